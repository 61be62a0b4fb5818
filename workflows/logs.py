"""Logging: structlog to stderr, JSON unless a person is watching (stdout belongs to stdio MCP)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from temporalio import workflow


def configure(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    """Route structlog and stdlib logging (Temporal's `workflow.logger` too) to one stderr sink."""
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
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
