"""MCP progress of one tool call as activity heartbeats: checked, bounded, repeated while it runs.

A server's `notifications/progress` for a call becomes the heartbeat details of the activity
running it, which `temporal workflow describe`, `airlock show` and `airlock run --follow` read
from the pending activity. The same heartbeats carry cancellation to the activity, so they
go on at a steady pace whether or not the server reports anything.
A server is not trusted to be sane: values that are not finite, negative or not increasing
(the spec says progress MUST increase) are ignored, a `total` below the progress is dropped, and
messages are cut and scrubbed of secrets before they reach Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

from temporalio import activity

MAX_MESSAGE_CHARS = 200
# Scrubbed before cutting to MAX_MESSAGE_CHARS, so a flood of huge messages costs little.
SCRUB_WINDOW_CHARS = 1_000
BEAT_EVERY_S = 1.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


class CallProgress:
    """The latest progress of one call, sent as heartbeat details; a callback for the mcp SDK."""

    def __init__(self, call_id: str | None, server: str, tool: str, scrub: Callable[[str], str]) -> None:
        self._scrub = scrub
        self.details: dict[str, Any] = {"call_id": call_id, "server": server, "tool": tool}
        self.received = 0
        self.ignored = 0
        self._last: float | None = None
        self._changed = asyncio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        """One `notifications/progress`: keep it if it is sane, and wake the beat.

        It runs in the MCP session's task, not the activity's, so it never heartbeats itself: the
        activity context there would be whichever activity opened the session.
        """
        self.received += 1
        value = _number(progress)
        if value is None or (self._last is not None and value <= self._last):
            self.ignored += 1
            return
        self._last = value
        whole = _number(total)
        text = self._scrub(str(message or "")[:SCRUB_WINDOW_CHARS])[:MAX_MESSAGE_CHARS]
        self.details = {
            **self.details,
            "progress": value,
            "total": whole if whole and whole >= value else None,
            "message": text,
        }
        self._changed.set()

    async def beat(self, every: float = BEAT_EVERY_S) -> None:
        """Heartbeat the latest details until cancelled, so Temporal sees a live worker and can cancel."""
        while True:
            activity.heartbeat(self.details)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), every)
            self._changed.clear()
