"""Per-server protection shared by every run on a worker: circuit breaker, rate limit, message bounds."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from mcp_servers.client.errors import BreakerRefusedError

# One message from a server (a stdio line, an HTTP body), counted while it is read
# (mcp_servers/client/reading.py): past either bound the rest is dropped and its request refused.
# Bytes: room for a result many times AIRLOCK_MAX_RESULT_BYTES (it is cut to that afterwards,
# with a marker saying its size) and for a long tool list. Parts: JSON objects, what costs memory
# once parsed (~2 KB each as MCP content blocks), so at most ~100 MB.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_PARTS = 50_000


class CircuitBreaker:
    """Opens after `threshold` failures within `window` seconds; after `cooldown` one probe call
    is let through (half-open), and its success closes the circuit again."""

    def __init__(
        self,
        threshold: int = 5,
        window: float = 30.0,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False
        # Counters for operators and tests: how often the circuit opened, how many calls it refused.
        self.opened = 0
        self.rejected = 0

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open`."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def check(self) -> bool:
        """Raise `BreakerRefusedError` unless a call may go through now; True when that call is the probe."""
        if self._opened_at is None:
            return False
        waited = self._clock() - self._opened_at
        if waited < self.cooldown:
            self.rejected += 1
            raise BreakerRefusedError(
                f"circuit open after repeated failures; next try in {self.cooldown - waited:.1f}s"
            )
        if self._probing:
            self.rejected += 1
            raise BreakerRefusedError("circuit half-open; a probe call is in flight")
        self._probing = True
        return True

    def success(self) -> None:
        """A call worked: close the circuit."""
        self._failures.clear()
        self._opened_at = None
        self._probing = False

    def release(self) -> None:
        """The probe call ended without a verdict (it was cancelled): the next call may probe.

        Without this, a cancelled probe would leave the circuit half-open with "a probe call in
        flight" for ever, refusing every later call.
        """
        self._probing = False

    def failure(self) -> bool:
        """A call failed because the server is unwell (not bad arguments); True if the circuit opened."""
        now = self._clock()
        if self._probing:
            self._opened_at, self._probing = now, False
            self.opened += 1
            return True
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()
        if len(self._failures) < self.threshold:
            return False
        newly_open = self._opened_at is None
        self._opened_at = now
        self.opened += newly_open
        return newly_open


class RateLimiter:
    """At most `per_second` calls start per second, spaced evenly; waiters queue in order."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this call's turn."""
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)
