"""Waiting on a condition with a deadline (`wait_for`), small conditions, and a test's processes: alive, killed."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def condition(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`predicate` as the async check `wait_for` polls."""

    async def check() -> bool:
        return predicate()

    return check


def child_pids(pid: int) -> list[int]:
    """Direct children of process `pid` (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.extend(int(p) for p in (task / "children").read_text().split())
    return children


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesised command name; Z is a zombie (exited).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of process `pid`, spaces between arguments."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def kill_if_alive(pid: int) -> None:
    """SIGKILL `pid` if it still runs: a failed test must not leave a process behind."""
    if alive(pid):
        os.kill(pid, 9)
