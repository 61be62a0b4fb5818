"""Measuring helpers: percentiles, CPU from /proc, and a bounded-concurrency throughput loop."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (`fraction` in 0..1)."""
    ordered = sorted(samples)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def summary_ms(samples: list[float]) -> dict[str, Any]:
    """Median, p95, mean, min and count of durations given in seconds, reported in ms."""
    return {
        "n": len(samples),
        "median_ms": statistics.median(samples) * 1000,
        "p95_ms": percentile(samples, 0.95) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
        "min_ms": min(samples) * 1000,
    }


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (every thread), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(parent: int, command_contains: str) -> list[int]:
    """Direct children of `parent` whose command line contains `command_contains`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and command_contains in cmdline:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """Accumulates CPU seconds of a set of processes over chosen intervals."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.totals = dict.fromkeys(pids, 0.0)
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        readings = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        readings["bench"] = time.process_time()
        return readings

    def __enter__(self) -> CpuMeter:
        self._start = self._read()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._read()
        for name, value in end.items():
            self.totals[name] = self.totals.get(name, 0.0) + value - self._start[name]


async def throughput(run: Callable[[], Awaitable[object]], runs: int, concurrency: int) -> float:
    """Runs per second completing `runs` calls of `run` with at most `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await run()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    return runs / (time.perf_counter() - began)


def process_rss_bytes(pid: int) -> int:
    """Resident set size of process `pid`, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")
