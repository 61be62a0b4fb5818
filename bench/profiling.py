"""Optional sampling profile of the worker with py-spy, and a short text summary of it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

STOP_DEADLINE_S = 30.0
# Scaffolding every stack passes through; leaving it out of the inclusive list shows the real costs.
_PLUMBING = ("asyncio/", "threading.py", "concurrent/futures/", "(worker.py)", "(<string>)", "selectors.py")
_LINE_NO = re.compile(r":\d+\)$")


def py_spy_binary() -> str:
    """py-spy next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


@contextlib.asynccontextmanager
async def py_spy(pid: int, output: Path | None) -> AsyncIterator[None]:
    """Sample `pid` (GIL-holding stacks only) into `output` as collapsed stacks; no-op without output."""
    if output is None:
        yield
        return
    proc = await asyncio.create_subprocess_exec(
        py_spy_binary(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "--gil",
        "--function",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _frames(stack: str) -> list[str]:
    return [_LINE_NO.sub(")", frame) for frame in stack.split(";")]


def summarise(raw: Path, top: int = 20) -> str:
    """Top functions by inclusive share of samples, and by own (leaf) share, from py-spy raw output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # a frame name with a newline in it (code compiled from a string) split the line
        count = int(count_text)
        frames = _frames(stack)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "  (no samples)"
    lines = [f"  {total} samples holding the GIL", "  inclusive (asyncio/thread plumbing left out):"]
    shown = [(frame, n) for frame, n in inclusive.most_common() if not any(p in frame for p in _PLUMBING)]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in shown[:top]]
    lines.append("  own:")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)
