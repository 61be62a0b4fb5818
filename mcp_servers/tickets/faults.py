"""Fault injection for tests: environment knobs that make the tickets server misbehave on purpose.

Every knob is off unless its variable is set, and the worker passes a variable to a stdio child
only when `servers.toml` lists it in `env`, so a production registry never turns one on.

- `TICKETS_FAULT_TOOL`: the tool the fault applies to (every `tools/call` when unset).
- `TICKETS_FAULT`: what happens to a call of that tool:
  `crash` exits the process mid-call, before answering, once per `TICKETS_FAULT_MARKER` file
  (the file is created first, so a restarted server behaves); `hang` accepts the call and
  never answers; `slow:<seconds>` runs the call, then holds the answer that long (a write is
  committed while its caller waits, so a test can kill the caller in between); `pad:<bytes>`
  appends a text block of that many bytes to the result.
- `TICKETS_STATS_FILE`: a JSON file the server keeps up to date with the number of tool calls
  it finished and the most it ever had in flight at once, so tests can check limits from the
  server's side.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent

logger = logging.getLogger(__name__)

# Distinct from a Python traceback's 1 so a test can tell the injected crash from a real one.
CRASH_EXIT_CODE = 70


@dataclass
class _Stats:
    in_flight: int = 0
    peak_in_flight: int = 0
    calls: int = 0


class FaultInjector:
    """Server middleware that applies the `TICKETS_FAULT*` knobs to `tools/call` requests."""

    def __init__(self) -> None:
        """Start with no call seen; knobs are read per call from the environment."""
        self._stats = _Stats()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Count the call, apply the configured fault, and pass the call on."""
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        target = os.environ.get("TICKETS_FAULT_TOOL")
        fault = os.environ.get("TICKETS_FAULT", "") if target in (None, params.get("name")) else ""
        kind, _, argument = fault.partition(":")
        stats = self._stats
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            if kind == "crash" and _first_crash():
                # os._exit, not an exception: the process must vanish with the request unanswered,
                # as it does when the OOM killer or a segfault takes it.
                logger.error("fault injected: crashing mid-call tool=%s", params.get("name"))
                os._exit(CRASH_EXIT_CODE)
            if kind == "hang":
                logger.warning("fault injected: never answering tool=%s", params.get("name"))
                await anyio.sleep_forever()
            result = await call_next(ctx)
            if kind == "slow":
                await anyio.sleep(float(argument))
            if kind == "pad":
                result = _padded(result, int(argument))
            return result
        finally:
            stats.in_flight -= 1
            stats.calls += 1
            _write_stats(stats)


def _first_crash() -> bool:
    marker = os.environ.get("TICKETS_FAULT_MARKER")
    if not marker:
        return True
    try:
        # O_EXCL makes "create the marker" and "am I first?" one atomic step across processes.
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def _padded(result: HandlerResult, size: int) -> HandlerResult:
    filler = TextContent(type="text", text="x" * size)
    if isinstance(result, CallToolResult):
        return result.model_copy(update={"content": [*result.content, filler]})
    if isinstance(result, dict) and isinstance(result.get("content"), list):
        return {**result, "content": [*result["content"], filler.model_dump(by_alias=True, exclude_none=True)]}
    return result


def _write_stats(stats: _Stats) -> None:
    path = os.environ.get("TICKETS_STATS_FILE")
    if not path:
        return
    target = Path(path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"calls": stats.calls, "peak_in_flight": stats.peak_in_flight}))
    # Atomic rename: a test reading the file never sees half of it.
    temporary.replace(target)
