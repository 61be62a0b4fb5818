"""Circuit breaker and rate limiter, on a controlled clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from mcp_servers.client.errors import BreakerRefusedError
from mcp_servers.client.limits import CircuitBreaker, RateLimiter

pytestmark = pytest.mark.integration  # starts MCP servers


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_failures_in_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now += 11  # the first failure falls out of the window
    breaker.failure()
    breaker.failure()
    breaker.check()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(BreakerRefusedError, match=r"next try in 5\.0s"):
        breaker.check()


def test_breaker_half_open_probe_closes_on_success_and_reopens_on_failure() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now += 5
    breaker.check()  # the probe goes through
    assert breaker.state == "half_open"
    with pytest.raises(BreakerRefusedError, match="probe"):
        breaker.check()  # only one probe at a time
    breaker.failure()
    assert breaker.state == "open", "a failed probe opens the circuit for another cooldown"
    clock.now += 5
    breaker.check()
    breaker.success()
    assert breaker.state == "closed"
    breaker.check()


async def test_rate_limiter_spaces_calls() -> None:
    limiter = RateLimiter(per_second=20)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(6)))
    # Six calls at 20/s: the last may start 5 intervals (250 ms) after the first.
    assert time.monotonic() - started >= 0.24


def test_breaker_counts_openings_and_refusals_and_a_cancelled_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, window=10, cooldown=5, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.failure()  # already open: not a second opening
    for _ in range(3):
        with pytest.raises(BreakerRefusedError):
            breaker.check()
    assert (breaker.opened, breaker.rejected) == (1, 3)
    clock.now += 5
    assert breaker.check() is True  # the probe
    breaker.release()  # ... is cancelled without a verdict
    breaker.check()  # so the next call may probe instead of being refused for ever
    breaker.success()
    assert (breaker.state, breaker.opened, breaker.rejected) == ("closed", 1, 3)
