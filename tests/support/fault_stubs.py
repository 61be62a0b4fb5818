"""OpenAI-compatible stubs for fault tests: one that notes when requests arrive, one that routes.

Both extend `OpenAIStub`, so the real `openai` client in the worker talks HTTP to them exactly
as it does to the plain stub; only how a reply is chosen differs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.support.openai_stub import OpenAIStub, Reply, _error

# A held request is answered at the latest after this long, so a test that forgets to release
# it cannot keep the stub's server thread from stopping.
HOLD_LIMIT_S = 60.0


class TimedStub(OpenAIStub):
    """The scripted stub, also noting when each request arrived (`time.monotonic()`)."""

    def __init__(self, replies: list[Reply]) -> None:
        """Answer `replies` in order, as `OpenAIStub` does."""
        super().__init__(replies)
        self.arrivals: list[float] = []

    async def _receive(self, request: Request) -> tuple[dict[str, Any], Reply, int] | JSONResponse:
        self.arrivals.append(time.monotonic())
        return await super()._receive(request)


class RoutedStub(OpenAIStub):
    """Answers many concurrent runs of one worker, each from its own script.

    A run is recognised by a `[route:NAME]` marker in its conversation (put it in the run's
    input). The reply is chosen by the turn, counted from the tool results the conversation
    already holds, so a model call that is executed again after a worker dies gets the same
    answer, as the scripted model does. Turns listed in `hold` keep their first request waiting,
    unanswered, until `release()` or `stop()`: a model call in flight for as long as a test needs.

    Attributes:
        seen: `(route, turn)` of every request, in arrival order.
    """

    def __init__(self, routes: dict[str, list[Reply]], hold: set[tuple[str, int]] | None = None) -> None:
        """Serve `routes` (name → one reply per turn), holding the first request of `hold` turns."""
        super().__init__([])
        self.routes = routes
        self.seen: list[tuple[str, int]] = []
        self._hold = set(hold or ())
        self._released = threading.Event()
        self._lock = threading.Lock()

    def count(self, route: str) -> int:
        """How many requests of `route` arrived."""
        with self._lock:
            return sum(1 for name, _ in self.seen if name == route)

    def release(self) -> None:
        """Answer held requests (with a 503: their caller is normally gone by then)."""
        self._released.set()

    def stop(self) -> None:
        """Release held requests, then stop the server."""
        self.release()
        super().stop()

    async def _receive(self, request: Request) -> tuple[dict[str, Any], Reply, int] | JSONResponse:
        if not request.headers.get("authorization", "").lower().startswith("bearer "):
            return _error(401, "Missing bearer token in the Authorization header.")
        body = await request.json()
        text = json.dumps(body)
        route = next((name for name in self.routes if f"[route:{name}]" in text), None)
        if route is None:
            return _error(400, "RoutedStub: no [route:NAME] marker in the conversation")
        turn = _tool_results(body)
        with self._lock:
            self.requests.append({**body, "_path": request.url.path})
            self.seen.append((route, turn))
            held = (route, turn) in self._hold
            self._hold.discard((route, turn))
        if held:
            # The event is set from the test's thread; waiting in a worker thread keeps the
            # stub's event loop free to answer other runs meanwhile.
            await asyncio.to_thread(self._released.wait, HOLD_LIMIT_S)
            return _error(503, f"RoutedStub: held request of {route} turn {turn} released")
        replies = self.routes[route]
        if turn >= len(replies):
            return _error(500, f"RoutedStub: route {route} has {len(replies)} turns; turn {turn + 1} has none")
        return body, replies[turn], len(self.requests)


def _tool_results(body: dict[str, Any]) -> int:
    """How many tool results a Responses or Chat Completions request carries."""
    if "messages" in body:
        return sum(1 for message in body["messages"] if message.get("role") == "tool")
    items = body.get("input")
    if not isinstance(items, list):
        return 0
    return sum(1 for item in items if isinstance(item, dict) and item.get("type") == "function_call_output")
