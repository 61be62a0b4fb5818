"""Logging: structlog to stderr, JSON unless a person is watching (stdout belongs to stdio MCP)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from temporalio import workflow

from mcp_servers import logs as mcp_logs
from runtime.redaction import Redactor


def configure(
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    redactor: Redactor | None = None,
) -> None:
    """Route structlog and stdlib logging (Temporal's `workflow.logger` too) to one stderr sink.

    With `redactor`, every line is scrubbed of the worker's secrets on its way out.
    """
    # The scrubber runs in the handler's formatter, which every record passes (structlog's own and
    # stdlib ones: Temporal, httpx, `workflow.logger`), after the exception is rendered to text.
    processors: list[structlog.types.Processor] = [drop_core_entry, drop_color_message]
    if fmt == "console" or (fmt == "auto" and sys.stderr.isatty()):
        # A person reads these: a run's ids, not the whole dict Temporal attaches to each line.
        processors.append(short_temporal_fields)
    if redactor is not None:
        processors.append(Scrubber(redactor))
    mcp_logs.configure(level, fmt, processors=processors)
    # Workflow ids travel as structured fields (`temporal_workflow`), not glued onto the message.
    workflow.logger.workflow_info_on_message = False


def drop_core_entry(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Leave out `temporal_log`, the raw entry Temporal's log forwarding attaches to core's records.

    Its text and fields are in the message already; rendered, it would only be an object's repr.
    """
    event_dict.pop("temporal_log", None)
    return event_dict


def drop_color_message(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Leave out uvicorn's `color_message`: the message again, with ANSI colour codes in it."""
    event_dict.pop("color_message", None)
    return event_dict


def short_temporal_fields(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put `workflow=ID` (and `activity=TYPE`) where Temporal attaches its whole info dicts.

    For lines a person reads; JSON keeps the dicts, for machines that filter on them.
    """
    for key, short in (("temporal_workflow", "workflow"), ("temporal_activity", "activity")):
        info = event_dict.pop(key, None)
        if isinstance(info, dict):
            event_dict.setdefault(short, info.get("activity_type") or info.get("workflow_id") or "?")
            if short == "activity" and info.get("workflow_id"):
                event_dict.setdefault("workflow", info["workflow_id"])
        elif info is not None:
            event_dict[key] = info
    return event_dict


def error_echo(stream: TextIO, *, redactor: Redactor | None = None) -> logging.Handler:
    """A handler that also shows errors on `stream` (a terminal), one readable line each.

    For the demo on a terminal, whose log goes to a file: a problem that stops it is still seen.
    """
    processors: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        drop_core_entry,
        drop_color_message,
        short_temporal_fields,
    ]
    if redactor is not None:
        processors.append(Scrubber(redactor))
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name],
            processors=[*processors, structlog.dev.ConsoleRenderer(colors=False)],
        )
    )
    return handler


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
