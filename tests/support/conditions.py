"""Small conditions for `wait_for`: plain predicates and process liveness."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path


def condition(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`predicate` as the async check `wait_for` polls."""
    async def check() -> bool:
        return predicate()
    return check


def alive(pid: int) -> bool:
    """Whether the process runs; an exited child its parent has not reaped yet counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
