"""How many workflows one worker process keeps cached: sized from the memory the process may use.

A run waiting at the approval gate is a cached workflow: its Agents SDK state, conversation view
and gate, held in memory so that a decision is applied without replaying the run. Temporal's default
cache of 1,000 runs is far too small for a worker with thousands of runs waiting (past it, every
decision replays a whole run) and says nothing of memory. Airlock sizes it instead:

    max_cached_workflows = clamp(memory * CACHE_SHARE / processes / RUN_FOOTPRINT_BYTES,
                                 MIN_CACHED, MAX_CACHED)

where `memory` is what the process may use (its cgroup's `memory.max`, else the host's MemTotal),
`processes` the worker processes sharing it (`AIRLOCK_WORKER_PROCESSES`), and RUN_FOOTPRINT_BYTES
the measured resident memory of one cached waiting run (docs/scale.md). The cache then bounds the
memory waiting runs take: at most CACHE_SHARE of the process's share of memory.
`AIRLOCK_MAX_CACHED_WORKFLOWS` overrides the computed figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Resident memory one cached run waiting at the gate adds to a worker (the `writer` agent of the
# bench: a read, a gated write, their conversation), measured with `python bench/run.py` as
# "worker RSS per waiting run" (136-159 KiB at 500, 2,000 and 10,000 runs) with a fifth of
# headroom; docs/scale.md has the figures.
RUN_FOOTPRINT_BYTES = 192 * 1024
# The share of the process's memory the cache may take; the rest is the interpreter, the MCP
# sessions, in-flight activities and the headroom a burst of replays needs.
CACHE_SHARE = 0.5
# Temporal's own default is the floor: a small host keeps what it would have had anyway.
MIN_CACHED = 1_000
# Past this a waiting run costs more to keep than to replay: a sticky queue this long is rare.
MAX_CACHED = 100_000

CGROUP_V2_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
MEMINFO = Path("/proc/meminfo")
# cgroup v1 says "no limit" with a number near 2**63.
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CacheSize:
    """The cache size a worker process uses and where it came from, for its start-up log line."""

    max_cached_workflows: int
    memory_bytes: int | None
    source: str

    @property
    def bound_bytes(self) -> int:
        """The memory the cached runs may take at most: the cache size times a waiting run's footprint."""
        return self.max_cached_workflows * RUN_FOOTPRINT_BYTES


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def process_memory_bytes(
    cgroup_v2: Path = CGROUP_V2_MAX, cgroup_v1: Path = CGROUP_V1_LIMIT, meminfo: Path = MEMINFO
) -> tuple[int | None, str]:
    """The memory this process may use and where that figure came from (cgroup limit, else the host's)."""
    for path, name in ((cgroup_v2, "cgroup memory.max"), (cgroup_v1, "cgroup memory.limit_in_bytes")):
        limit = _read_int(path)  # "max" (v2, no limit) reads as None
        if limit is not None and 0 < limit < UNLIMITED:
            return limit, name
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024, "host MemTotal"
    except OSError:
        pass
    return None, "unknown"


def cache_size(configured: int | None, processes: int = 1, memory: tuple[int | None, str] | None = None) -> CacheSize:
    """How many workflows a worker process caches: `configured` if set, else computed from memory."""
    if configured is not None:
        return CacheSize(configured, None, "AIRLOCK_MAX_CACHED_WORKFLOWS")
    memory_bytes, source = memory if memory is not None else process_memory_bytes()
    if memory_bytes is None:
        return CacheSize(MIN_CACHED, None, "memory unknown: Temporal's default")
    computed = int(memory_bytes * CACHE_SHARE / max(processes, 1) / RUN_FOOTPRINT_BYTES)
    return CacheSize(min(max(computed, MIN_CACHED), MAX_CACHED), memory_bytes, source)
