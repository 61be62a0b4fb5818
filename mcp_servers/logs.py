"""One log format for every Airlock process: structlog to stderr, JSON unless a person is watching.

The worker and the bundled MCP servers share it, so their lines form one stream; it lives on the
MCP side because that side knows nothing of Temporal (stdout belongs to the stdio protocol).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

# Chatty libraries stay at warning unless asked for.
QUIET = ("httpx", "httpx2", "mcp", "openai", "temporalio.activity", "uvicorn.access")


def configure(
    level: str = "INFO",
    fmt: LogFormat = "auto",
    *,
    processors: Sequence[structlog.types.Processor] = (),
) -> None:
    """Route structlog and stdlib logging to one stderr handler; `processors` run last before rendering.

    JSON when `fmt` is `json`, or `auto` and stderr is not a terminal; never ANSI colour codes.
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *processors,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
