"""Airlock benchmark: durable `AgentWorkflow` runs against the plain Agents SDK floor (issue 6).

    python bench/run.py            # full: about 2 minutes on a 2-core machine (hard limit 330 s)
    python bench/run.py --quick    # small counts, under a minute
    python bench/run.py --profile  # also record the worker with py-spy (bench/results/worker-profile.txt)

Everything runs on loopback: the bundled Temporal dev server, `python worker.py` as a subprocess,
and the bundled `tickets` MCP server over stdio (one for each side). Results go to
bench/results/latest.json and bench/results/history_and_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import durable_runs
import report
from measure import CpuMeter, child_pids, summary_ms, throughput
from plain_sdk import PlainRunner
from profiling import py_spy, summarise
from scenario import TINY_AGENT, Scenario, build, reader_agent, steps_of
from temporalio.client import Client

from workflows import devserver

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROMPT = "Read tickets T-1 to T-5 in turn, then summarise them."
BASE_K = 5


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a mode takes."""

    mode: str
    warmup: int
    sequential: int
    throughput_runs: int
    history_reps: tuple[int, ...]  # runs of each side for each K in `ks`
    approvals: int
    hard_limit_s: float
    concurrency: tuple[int, ...] = (10, 50)
    ks: tuple[int, ...] = (5, 50, 200)


QUICK = Plan("quick", warmup=2, sequential=8, throughput_runs=20, history_reps=(3, 1, 1), approvals=5,
             hard_limit_s=55)
FULL = Plan("full", warmup=5, sequential=50, throughput_runs=100, history_reps=(15, 7, 3), approvals=20,
            hard_limit_s=330)


@dataclass(frozen=True)
class Options:
    """Command-line choices besides the plan."""

    worker: Path = durable_runs.WORKER_SCRIPT
    profile: Path | None = None


@dataclass
class Bench:
    """Both runners and the CPU meters of one benchmark process run."""

    plan: Plan
    client: Client
    task_queue: str
    plain: PlainRunner
    worker: durable_runs.WorkerProcess
    durable_cpu: CpuMeter = field(default_factory=lambda: CpuMeter({}))
    plain_cpu: CpuMeter = field(default_factory=lambda: CpuMeter({}))
    durable_steps: int = 0
    plain_steps: int = 0

    async def durable_run(self, k: int) -> float:
        """One durable run of the K-read agent; wall seconds."""
        seconds, _ = await durable_runs.run(self.client, self.task_queue, reader_agent(k), PROMPT)
        return seconds

    async def plain_run(self, k: int) -> float:
        """One plain SDK run of the K-read agent; wall seconds."""
        return await self.plain.run(reader_agent(k), PROMPT)

    async def metered_pair(self, k: int, durable_first: bool) -> tuple[float, float]:
        """One plain and one durable run, CPU-metered; returns (plain, durable) seconds."""
        async def plain() -> float:
            with self.plain_cpu:
                seconds = await self.plain_run(k)
            self.plain_steps += steps_of(k)
            return seconds

        async def durable() -> float:
            with self.durable_cpu:
                seconds = await self.durable_run(k)
            self.durable_steps += steps_of(k)
            return seconds

        if durable_first:
            d = await durable()
            return await plain(), d
        p = await plain()
        return p, await durable()


async def warm_up(bench: Bench) -> None:
    """Runs that are not counted: imports, sandbox caches and MCP sessions get hot."""
    for _ in range(bench.plan.warmup):
        await bench.plain_run(BASE_K)
        await bench.durable_run(BASE_K)


async def sequential(bench: Bench) -> dict[str, Any]:
    """Measurement 1: one run at a time, plain and durable interleaved (order alternating)."""
    plain: list[float] = []
    durable: list[float] = []
    for index in range(bench.plan.sequential):
        p, d = await bench.metered_pair(BASE_K, durable_first=index % 2 == 1)
        plain.append(p)
        durable.append(d)
    result: dict[str, Any] = {"k": BASE_K, "steps": steps_of(BASE_K), "plain": summary_ms(plain),
                              "durable": summary_ms(durable)}
    result["ratio"] = result["durable"]["median_ms"] / result["plain"]["median_ms"]
    result["p95_ratio"] = result["durable"]["p95_ms"] / result["plain"]["p95_ms"]
    result["overhead_ms_per_step"] = (
        result["durable"]["median_ms"] - result["plain"]["median_ms"]) / steps_of(BASE_K)
    return result


async def throughput_phase(bench: Bench) -> dict[str, Any]:
    """Measurement 2: a fixed number of runs with bounded concurrency, each side in turn."""
    runs = bench.plan.throughput_runs
    result: dict[str, Any] = {"k": BASE_K, "runs": runs, "concurrency": list(bench.plan.concurrency)}
    for level in bench.plan.concurrency:
        with bench.plain_cpu:
            plain_rps = await throughput(lambda: bench.plain_run(BASE_K), runs, level)
        bench.plain_steps += runs * steps_of(BASE_K)
        with bench.durable_cpu:
            durable_rps = await throughput(lambda: bench.durable_run(BASE_K), runs, level)
        bench.durable_steps += runs * steps_of(BASE_K)
        result[f"c{level}"] = {"plain_rps": plain_rps, "durable_rps": durable_rps,
                               "ratio": durable_rps / plain_rps}
    return result


def cpu_per_step(bench: Bench) -> dict[str, Any]:
    """Measurement 3: CPU per step of each process over the metered runs (phases 1 and 2)."""
    durable, plain = bench.durable_cpu.totals, bench.plain_cpu.totals
    per_durable = 1000 / bench.durable_steps
    per_plain = 1000 / bench.plain_steps
    return {
        "durable_steps": bench.durable_steps, "plain_steps": bench.plain_steps,
        "worker_s_per_step": durable["worker"] / bench.durable_steps,
        "worker_ms_per_step": durable["worker"] * per_durable,
        "worker_mcp_ms_per_step": durable["worker_mcp"] * per_durable,
        "server_ms_per_step": durable["temporal"] * per_durable,
        "client_ms_per_step": durable["bench"] * per_durable,
        "plain_process_ms_per_step": plain["bench"] * per_plain,
        "plain_mcp_ms_per_step": plain["plain_mcp"] * per_plain,
        "note": "worker = `python worker.py` (all threads, /proc utime+stime); client = this process "
                "while durable runs were in flight; plain process = this process during plain runs",
    }


async def history_phase(bench: Bench) -> list[dict[str, Any]]:
    """Measurement 4: history events and bytes per step, and latency per step, for each K."""
    rows = []
    for k, reps in zip(bench.plan.ks, bench.plan.history_reps, strict=True):
        plain: list[float] = []
        durable: list[float] = []
        handle = None
        for rep in range(reps):
            if rep % 2 == 0:
                plain.append(await bench.plain_run(k))
            seconds, handle = await durable_runs.run(bench.client, bench.task_queue, reader_agent(k), PROMPT)
            durable.append(seconds)
            if rep % 2 == 1:
                plain.append(await bench.plain_run(k))
        assert handle is not None
        events, proto_bytes, json_bytes = await durable_runs.history_size(handle)
        steps = steps_of(k)
        plain_ms, durable_ms = summary_ms(plain)["median_ms"], summary_ms(durable)["median_ms"]
        rows.append({
            "k": k, "steps": steps, "events": events, "events_per_step": events / steps,
            "bytes": proto_bytes, "bytes_per_step": proto_bytes / steps,
            "json_bytes": json_bytes, "json_bytes_per_step": json_bytes / steps,
            "plain_median_ms": plain_ms, "durable_median_ms": durable_ms,
            "plain_ms_per_step": plain_ms / steps, "durable_ms_per_step": durable_ms / steps,
        })
    return rows


def marginal_bytes(rows: list[dict[str, Any]]) -> float:
    """History bytes added per extra step between the two largest K: the true growth rate."""
    small, large = rows[-2], rows[-1]
    return float((large["bytes"] - small["bytes"]) / (large["steps"] - small["steps"]))


async def approvals(bench: Bench, scenario: Scenario) -> dict[str, Any]:
    """Measurement 5: `approve` signal accepted → the gated write reaches the tickets server."""
    await durable_runs.approval_latency(bench.client, bench.task_queue, scenario.durable_db)  # warm-up
    samples = [
        await durable_runs.approval_latency(bench.client, bench.task_queue, scenario.durable_db)
        for _ in range(bench.plan.approvals)
    ]
    return summary_ms(samples)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time one phase and tell the person watching what is running."""
    print(f"… {name}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - began, 2)


@contextlib.asynccontextmanager
async def temporal_server() -> AsyncIterator[tuple[Client, str]]:
    """The bundled dev server on a free loopback port (in memory); its client and address."""
    port = devserver.free_port()
    env = await devserver.start(port=port)
    try:
        yield env.client, f"127.0.0.1:{port}"
    finally:
        await env.shutdown()


async def measure_all(plan: Plan, scenario: Scenario, options: Options) -> dict[str, Any]:
    """Start everything, run the six measurements, stop everything."""
    timings: dict[str, float] = {}
    task_queue = f"airlock-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"phase_seconds": timings}
    async with temporal_server() as (client, address):
        env = durable_runs.worker_env(scenario, address, task_queue)
        with phase("worker start-up", timings):
            async with durable_runs.worker_process(env, scenario.root / "worker.log", options.worker) as worker:
                await durable_runs.run(client, task_queue, TINY_AGENT, PROMPT)
                results["startup"] = {
                    "ready_s": worker.ready_s, "first_run_s": time.perf_counter() - worker.spawned_at,
                    "note": "from spawning `python worker.py` to its 'worker ready' log line, and to the "
                            "end of its first run (a one-step agent: MCP connect, prepare, one model call)",
                }
                async with PlainRunner(scenario) as plain:
                    bench = Bench(plan, client, task_queue, plain, worker)
                    results.update(await _phases(bench, scenario, timings, options.profile))
        results["worker_log"] = durable_runs.log_problems(scenario.root / "worker.log")
    return results


def _meters(bench: Bench) -> None:
    [temporal] = child_pids(os.getpid(), "start-dev")
    [plain_mcp] = child_pids(os.getpid(), "mcp_servers.tickets")
    [worker_mcp] = child_pids(bench.worker.pid, "mcp_servers.tickets")
    bench.durable_cpu = CpuMeter({"worker": bench.worker.pid, "worker_mcp": worker_mcp, "temporal": temporal})
    bench.plain_cpu = CpuMeter({"plain_mcp": plain_mcp})


async def _phases(bench: Bench, scenario: Scenario, timings: dict[str, float], profile: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    _meters(bench)
    with phase("warm-up", timings):
        await warm_up(bench)
    async with py_spy(bench.worker.pid, profile):
        with phase("1. sequential", timings):
            results["sequential"] = await sequential(bench)
        with phase("2. throughput", timings):
            results["throughput"] = await throughput_phase(bench)
    results["cpu"] = cpu_per_step(bench)
    with phase("4. history and latency per step", timings):
        results["history"] = await history_phase(bench)
    results["history_marginal_bytes_per_step"] = marginal_bytes(results["history"])
    with phase("5. approval latency", timings):
        results["approval"] = await approvals(bench, scenario)
    return results


async def main_async(plan: Plan, options: Options) -> dict[str, Any]:
    """The whole benchmark, bounded by the plan's hard time limit."""
    began = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as tmp:
        scenario = build(Path(tmp), plan.ks)
        async with asyncio.timeout(plan.hard_limit_s):
            results = await measure_all(plan, scenario, options)
    results.update({
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "mode": plan.mode,
        "plan": asdict(plan), "worker_script": str(options.worker), "machine": report.machine(),
        "elapsed_s": time.perf_counter() - began,
        # Other work on the machine skews every number: the 1-minute load before and after.
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
    })
    results["targets"] = report.targets(results)
    return results


def main() -> None:
    """Parse flags, run, print the table and the targets, write JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts; finishes in under a minute")
    parser.add_argument("--profile", action="store_true",
                        help="record the worker with py-spy during phases 1-2 (needs `pip install py-spy`)")
    parser.add_argument("--worker", type=Path, default=durable_runs.WORKER_SCRIPT, metavar="SCRIPT",
                        help="worker script to run (default: worker.py); to compare a variant worker")
    args = parser.parse_args()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile = RESULTS_DIR / "worker-profile.txt" if args.profile else None
    options = Options(worker=args.worker.resolve(), profile=profile)
    results = asyncio.run(main_async(QUICK if args.quick else FULL, options))
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(results, indent=2))
    print(report.table(results))
    plotted = report.plot(results, RESULTS_DIR / "history_and_latency.png")
    print(f"\nJSON: {out}")
    print(f"plot: {RESULTS_DIR / 'history_and_latency.png'}" if plotted
          else "plot: skipped (pip install matplotlib)")
    if profile is not None and profile.exists():
        print(f"\nworker profile ({profile}), top frames by own samples:\n{summarise(profile)}")


if __name__ == "__main__":
    main()
