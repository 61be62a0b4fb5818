"""Logging: structlog to stderr, JSON unless a person is watching (stdout belongs to stdio MCP)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog
from temporalio import workflow

from workflows.redaction import Redactor


def configure(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto", *, redactor: Redactor | None = None,
) -> None:
    """Route structlog and stdlib logging (Temporal's `workflow.logger` too) to one stderr sink.

    With `redactor`, every line is scrubbed of the worker's secrets on its way out.
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The scrubber runs in the handler's formatter, which every record passes (structlog's own and
    # stdlib ones: Temporal, httpx, `workflow.logger`), after the exception is rendered to text.
    scrub: list[structlog.types.Processor] = [Scrubber(redactor)] if redactor is not None else []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            *scrub,
            renderer,
        ],
    ))
    # Workflow ids travel as structured fields (`temporal_workflow`), not glued onto the message.
    workflow.logger.workflow_info_on_message = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries stay at warning unless asked for.
    for name in ("httpx", "httpx2", "mcp", "openai", "temporalio.activity", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class Scrubber:
    """A structlog processor: the worker's secrets replaced in every value of the event dict."""

    def __init__(self, redactor: Redactor) -> None:
        """Scrub with `redactor`."""
        self.redactor = redactor

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """The event with every string in it (the rendered exception included) scrubbed."""
        return {key: self._value(value) for key, value in event_dict.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor.scrub(value)
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # Other objects are rendered by their repr (`error=err`); replace one only if that shows a secret.
        shown = repr(value)
        cleaned = self.redactor.scrub(shown)
        return value if cleaned == shown else cleaned
