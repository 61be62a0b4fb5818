"""The workflow cache is sized from the memory a worker process may use (runtime/capacity.py)."""

from __future__ import annotations

from pathlib import Path

from runtime.capacity import (
    CACHE_SHARE,
    MAX_CACHED,
    MIN_CACHED,
    RUN_FOOTPRINT_BYTES,
    cache_size,
    process_memory_bytes,
)

GIB = 2**30


def files(tmp_path: Path, v2: str | None, v1: str | None, total_kib: int = 16 * 2**20) -> tuple[Path, Path, Path]:
    """cgroup v2 and v1 limit files (absent when None) and a meminfo with MemTotal."""
    v2_file, v1_file, meminfo = tmp_path / "memory.max", tmp_path / "limit_in_bytes", tmp_path / "meminfo"
    if v2 is not None:
        v2_file.write_text(v2 + "\n")
    if v1 is not None:
        v1_file.write_text(v1 + "\n")
    meminfo.write_text(f"MemTotal:       {total_kib} kB\nMemFree:        1024 kB\n")
    return v2_file, v1_file, meminfo


def test_the_cgroup_limit_wins_over_the_hosts_memory(tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1").mkdir()
    assert process_memory_bytes(*files(tmp_path / "v2", str(4 * GIB), None)) == (4 * GIB, "cgroup memory.max")
    assert process_memory_bytes(*files(tmp_path / "v1", None, str(2 * GIB))) == (
        2 * GIB,
        "cgroup memory.limit_in_bytes",
    )


def test_no_cgroup_limit_means_the_hosts_memory(tmp_path: Path) -> None:
    assert process_memory_bytes(*files(tmp_path, "max", str(2**63 - 4096))) == (16 * GIB, "host MemTotal")


def test_the_cache_holds_half_the_memory_in_waiting_runs_shared_by_the_processes() -> None:
    one = cache_size(None, 1, (8 * GIB, "test"))
    two = cache_size(None, 2, (8 * GIB, "test"))
    assert one.max_cached_workflows == int(8 * GIB * CACHE_SHARE / RUN_FOOTPRINT_BYTES)
    assert two.max_cached_workflows == one.max_cached_workflows // 2
    assert one.bound_bytes <= 8 * GIB * CACHE_SHARE


def test_the_cache_is_clamped_and_the_setting_overrides_it() -> None:
    assert cache_size(None, 1, (256 * 2**20, "test")).max_cached_workflows == MIN_CACHED
    assert cache_size(None, 1, (4096 * GIB, "test")).max_cached_workflows == MAX_CACHED
    assert cache_size(None, 1, (None, "unknown")).max_cached_workflows == MIN_CACHED
    configured = cache_size(250, 4, (8 * GIB, "test"))
    assert (configured.max_cached_workflows, configured.source) == (250, "AIRLOCK_MAX_CACHED_WORKFLOWS")
