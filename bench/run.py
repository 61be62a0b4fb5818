"""Airlock benchmark: durable `AgentWorkflow` runs against the plain Agents SDK floor and
against Temporal's own OpenAI Agents integration (the anchor).

    python bench/run.py            # full: about 20 minutes on a 2-core machine (hard limit 2400 s)
    python bench/run.py --quick    # small counts, 500 and 2,000 waiting runs: about 5 minutes
    python bench/run.py --profile  # also record the worker with py-spy (bench/results/worker-profile.txt)

Everything runs on loopback: the bundled Temporal dev server, `python worker.py` and the anchor
worker (bench/.anchor-venv, made on first run) as subprocesses, and the bundled `tickets` MCP
server over stdio (one for each side). Results go to bench/results/latest.json and
bench/results/history_and_latency.png.
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

import anchor_runs
import durable_runs
import floor
import report
import run_events
import scale
from measure import CpuMeter, child_pids, summary_ms, throughput
from plain_sdk import PlainRunner
from profiling import py_spy, summarise
from scenario import TINY_AGENT, Scenario, build, reader_agent, steps_of
from temporalio.client import Client

from runtime import devserver

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
    history_reps: tuple[int, ...]  # runs of plain and durable for each K in `ks`
    anchor_history_reps: tuple[int, ...]  # runs of the anchor for each K (0: not measured)
    approvals: int
    scale_runs: tuple[int, ...]  # runs waiting at the gate at once, one batch per size
    hard_limit_s: float
    concurrency: tuple[int, ...] = (10, 50)
    ks: tuple[int, ...] = (5, 50, 200)


# The anchor's runs grow quadratically with K (its K=200 run alone takes a minute or more), so it
# runs fewer of them, and none at K=200 in a quick run.
QUICK = Plan(
    "quick",
    warmup=2,
    sequential=8,
    throughput_runs=20,
    history_reps=(3, 1, 1),
    anchor_history_reps=(2, 1, 0),
    approvals=5,
    # The 10,000 figure takes several minutes: only in the full run.
    scale_runs=(500, 2000),
    hard_limit_s=600,
)
FULL = Plan(
    "full",
    warmup=5,
    sequential=40,
    throughput_runs=100,
    history_reps=(15, 7, 3),
    anchor_history_reps=(5, 1, 1),
    approvals=20,
    scale_runs=(500, 2000, 10_000),
    hard_limit_s=2400,
)
SIDES = ("plain", "durable", "anchor")
# Uncounted runs per process of a fresh worker in measurement 9 (imports, sessions, caches hot).
WARMUP_PER_PROCESS = 5


@dataclass(frozen=True)
class Options:
    """Command-line choices besides the plan."""

    worker: Path = durable_runs.WORKER_SCRIPT
    profile: Path | None = None


@dataclass
class Bench:
    """The three runners and the CPU meters of one benchmark process run."""

    plan: Plan
    client: Client
    task_queue: str
    anchor_queue: str
    plain: PlainRunner
    worker: durable_runs.WorkerProcess
    anchor_worker: durable_runs.WorkerProcess
    cpu: dict[str, CpuMeter] = field(default_factory=lambda: {side: CpuMeter({}) for side in SIDES})
    steps: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))

    async def run(self, side: str, k: int) -> float:
        """One run of the K-read agent on `side`; wall seconds."""
        if side == "plain":
            return await self.plain.run(reader_agent(k), PROMPT)
        if side == "durable":
            seconds, _ = await durable_runs.run(self.client, self.task_queue, reader_agent(k), PROMPT)
            return seconds
        seconds, _ = await anchor_runs.run(self.client, self.anchor_queue, k, PROMPT)
        return seconds

    async def metered(self, side: str, k: int) -> float:
        """One CPU-metered run on `side`; wall seconds."""
        with self.cpu[side]:
            seconds = await self.run(side, k)
        self.steps[side] += steps_of(k)
        return seconds


async def warm_up(bench: Bench) -> None:
    """Runs that are not counted: imports, sandbox caches and MCP sessions get hot."""
    for _ in range(bench.plan.warmup):
        for side in SIDES:
            await bench.run(side, BASE_K)


def _rotated(index: int) -> tuple[str, ...]:
    shift = index % len(SIDES)
    return SIDES[shift:] + SIDES[:shift]


async def sequential(bench: Bench) -> dict[str, Any]:
    """Measurement 1: one run at a time, the three sides interleaved (order rotating)."""
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    for index in range(bench.plan.sequential):
        for side in _rotated(index):
            samples[side].append(await bench.metered(side, BASE_K))
    result: dict[str, Any] = {"k": BASE_K, "steps": steps_of(BASE_K)}
    result.update({side: summary_ms(samples[side]) for side in SIDES})
    for side in ("durable", "anchor"):
        result[f"{side}_ratio"] = result[side]["median_ms"] / result["plain"]["median_ms"]
        result[f"{side}_p95_ratio"] = result[side]["p95_ms"] / result["plain"]["p95_ms"]
        result[f"{side}_overhead_ms_per_step"] = (result[side]["median_ms"] - result["plain"]["median_ms"]) / steps_of(
            BASE_K
        )
    # Kept under their old names: durable against plain.
    result["ratio"], result["p95_ratio"] = result["durable_ratio"], result["durable_p95_ratio"]
    result["overhead_ms_per_step"] = result["durable_overhead_ms_per_step"]
    result["airlock_vs_anchor_speedup"] = result["anchor"]["median_ms"] / result["durable"]["median_ms"]
    return result


async def throughput_phase(bench: Bench) -> dict[str, Any]:
    """Measurement 2: a fixed number of runs with bounded concurrency, each side in turn."""
    runs = bench.plan.throughput_runs
    result: dict[str, Any] = {"k": BASE_K, "runs": runs, "concurrency": list(bench.plan.concurrency)}
    for level in bench.plan.concurrency:
        rps: dict[str, float] = {}
        for side in SIDES:
            with bench.cpu[side]:
                rps[side] = await throughput(lambda side=side: bench.run(side, BASE_K), runs, level)
            bench.steps[side] += runs * steps_of(BASE_K)
        result[f"c{level}"] = {
            "plain_rps": rps["plain"],
            "durable_rps": rps["durable"],
            "anchor_rps": rps["anchor"],
            "ratio": rps["durable"] / rps["plain"],
            "anchor_ratio": rps["anchor"] / rps["plain"],
            "airlock_vs_anchor_speedup": rps["durable"] / rps["anchor"],
        }
    return result


def cpu_per_step(bench: Bench) -> dict[str, Any]:
    """Measurement 3: CPU per step of each process over the metered runs (phases 1 and 2)."""
    plain, durable, anchor = (bench.cpu[side].totals for side in SIDES)
    per_durable = 1000 / bench.steps["durable"]
    per_plain = 1000 / bench.steps["plain"]
    per_anchor = 1000 / bench.steps["anchor"]
    return {
        "durable_steps": bench.steps["durable"],
        "plain_steps": bench.steps["plain"],
        "anchor_steps": bench.steps["anchor"],
        "worker_s_per_step": durable["worker"] / bench.steps["durable"],
        "worker_ms_per_step": durable["worker"] * per_durable,
        "worker_mcp_ms_per_step": durable["worker_mcp"] * per_durable,
        "server_ms_per_step": durable["temporal"] * per_durable,
        "client_ms_per_step": durable["bench"] * per_durable,
        "plain_process_ms_per_step": plain["bench"] * per_plain,
        "plain_mcp_ms_per_step": plain["plain_mcp"] * per_plain,
        "anchor_worker_ms_per_step": anchor["worker"] * per_anchor,
        "anchor_mcp_ms_per_step": anchor["worker_mcp"] * per_anchor,
        "anchor_server_ms_per_step": anchor["temporal"] * per_anchor,
        "anchor_client_ms_per_step": anchor["bench"] * per_anchor,
        "note": "worker = `python worker.py` / the anchor worker (all threads, /proc utime+stime); client = "
        "this process while durable (anchor) runs were in flight; plain process = this process "
        "during plain runs",
    }


async def floor_phase(bench: Bench, scenario: Scenario, address: str) -> dict[str, Any]:
    """Measurement 8: the Temporal floor (bench/floor.py) against the plain floor, interleaved."""
    steps = steps_of(BASE_K) + 1  # the run's local activities: prepare, K+1 model turns, K reads
    queue = f"floor-bench-{uuid.uuid4().hex[:8]}"
    env = floor.worker_env(address, queue)
    async with durable_runs.worker_process(env, scenario.root / "floor-worker.log", floor.SCRIPT) as worker:
        for _ in range(bench.plan.warmup):
            await floor.run(bench.client, queue, steps)
        meter = CpuMeter({"worker": worker.pid})
        plain: list[float] = []
        timed: list[float] = []
        with meter:
            for _ in range(bench.plan.sequential):
                plain.append(await bench.run("plain", BASE_K))
                timed.append(await floor.run(bench.client, queue, steps))
        plain_rps = await throughput(lambda: bench.run("plain", BASE_K), bench.plan.throughput_runs, 10)
        with meter:
            floor_rps = await throughput(lambda: floor.run(bench.client, queue, steps), bench.plan.throughput_runs, 10)
    runs = bench.plan.sequential + bench.plan.throughput_runs
    plain_ms, floor_ms = summary_ms(plain)["median_ms"], summary_ms(timed)["median_ms"]
    return {
        "local_activities": steps,
        "plain_median_ms": plain_ms,
        "floor_median_ms": floor_ms,
        "floor_ratio": floor_ms / plain_ms,
        "plain_c10_rps": plain_rps,
        "floor_c10_rps": floor_rps,
        "floor_c10_share": floor_rps / plain_rps,
        "worker_ms_per_run": meter.totals["worker"] * 1000 / runs,
        "note": "the same number of local activities as a K=5 run, doing nothing, on a worker set up as "
        "Airlock's: what the Python SDK alone takes for the durable steps",
    }


async def _history_of(handle: Any, steps: int, prefix: str) -> dict[str, Any]:
    events, proto_bytes, json_bytes = await durable_runs.history_size(handle)
    return {
        f"{prefix}events": events,
        f"{prefix}events_per_step": events / steps,
        f"{prefix}bytes": proto_bytes,
        f"{prefix}bytes_per_step": proto_bytes / steps,
        f"{prefix}json_bytes": json_bytes,
        f"{prefix}json_bytes_per_step": json_bytes / steps,
    }


async def history_phase(bench: Bench) -> list[dict[str, Any]]:
    """Measurement 4: history events and bytes per step, and latency per step, for each K."""
    rows = []
    plan = bench.plan
    for k, reps, anchor_reps in zip(plan.ks, plan.history_reps, plan.anchor_history_reps, strict=True):
        plain: list[float] = []
        durable: list[float] = []
        anchor: list[float] = []
        handle = anchor_handle = None
        for rep in range(max(reps, anchor_reps)):
            if rep < reps and rep % 2 == 0:
                plain.append(await bench.run("plain", k))
            if rep < reps:
                seconds, handle = await durable_runs.run(bench.client, bench.task_queue, reader_agent(k), PROMPT)
                durable.append(seconds)
            if rep < anchor_reps:
                seconds, anchor_handle = await anchor_runs.run(bench.client, bench.anchor_queue, k, PROMPT)
                anchor.append(seconds)
            if rep < reps and rep % 2 == 1:
                plain.append(await bench.run("plain", k))
        assert handle is not None
        steps = steps_of(k)
        plain_ms, durable_ms = summary_ms(plain)["median_ms"], summary_ms(durable)["median_ms"]
        row: dict[str, Any] = {
            "k": k,
            "steps": steps,
            **await _history_of(handle, steps, ""),
            "plain_median_ms": plain_ms,
            "durable_median_ms": durable_ms,
            "plain_ms_per_step": plain_ms / steps,
            "durable_ms_per_step": durable_ms / steps,
            "anchor_median_ms": None,
            "anchor_ms_per_step": None,
        }
        if anchor_handle is not None:
            anchor_ms = summary_ms(anchor)["median_ms"]
            row.update(await _history_of(anchor_handle, steps, "anchor_"))
            row.update({"anchor_median_ms": anchor_ms, "anchor_ms_per_step": anchor_ms / steps})
        rows.append(row)
    return rows


def marginal_bytes(rows: list[dict[str, Any]], prefix: str = "") -> float | None:
    """History bytes added per extra step between the two largest K measured: the true growth rate."""
    measured = [row for row in rows if row.get(f"{prefix}bytes") is not None]
    if len(measured) < 2:
        return None
    small, large = measured[-2], measured[-1]
    return float((large[f"{prefix}bytes"] - small[f"{prefix}bytes"]) / (large["steps"] - small["steps"]))


async def approvals(bench: Bench) -> dict[str, Any]:
    """Measurement 5: `approve` signal accepted → the gated write applied by the tickets server."""
    await durable_runs.approval_latency(bench.client, bench.task_queue, bench.worker.log_file)  # warm-up
    samples = [
        await durable_runs.approval_latency(bench.client, bench.task_queue, bench.worker.log_file)
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
    print(f"  {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)


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
    """Start everything, run the eight measurements, stop everything."""
    timings: dict[str, float] = {}
    task_queue = f"airlock-bench-{uuid.uuid4().hex[:8]}"
    anchor_queue = f"anchor-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {"phase_seconds": timings}
    async with temporal_server() as (client, address):
        env = durable_runs.worker_env(scenario, address, task_queue)
        with phase("worker start-up", timings):
            async with durable_runs.worker_process(env, scenario.root / "worker.log", options.worker) as worker:
                await durable_runs.run(client, task_queue, TINY_AGENT, PROMPT)
                results["startup"] = {
                    "ready_s": worker.ready_s,
                    "first_run_s": time.perf_counter() - worker.spawned_at,
                    "note": "from spawning `python worker.py` to its 'worker ready' log line, and to the "
                    "end of its first run (a one-step agent: MCP connect, prepare, one model call)",
                }
                async with anchor_runs.worker_process(scenario, address, anchor_queue) as anchor_worker:
                    results["anchor_startup"] = {"ready_s": anchor_worker.ready_s}
                    async with PlainRunner(scenario) as plain:
                        bench = Bench(plan, client, task_queue, anchor_queue, plain, worker, anchor_worker)
                        results.update(await _phases(bench, scenario, address, timings, options.profile))
                with phase("9. worker processes: throughput with 1 and 2", timings):
                    results["processes"] = await processes_phase(plan, client, scenario, address, options.worker)
                sizes = ", ".join(map(str, plan.scale_runs))
                with phase(f"7. scale: {sizes} runs waiting at the gate", timings):
                    results["scale"] = await scale.scale_phase(client, address, task_queue, worker, plan.scale_runs)
        results["worker_log"] = durable_runs.log_problems(scenario.root / "worker.log")
        results["anchor_worker_log"] = durable_runs.log_problems(scenario.root / "anchor-worker.log")
    return results


async def processes_phase(plan: Plan, client: Client, scenario: Scenario, address: str, script: Path) -> dict[str, Any]:
    """Measurement 9: durable throughput at each concurrency with 1 and with 2 worker processes.

    Two workers, `python worker.py --processes 1` and `--processes 2`, each on a task queue of its
    own with the same scenario, both up (an idle worker costs next to nothing). At each level the
    two are measured back to back, then again in the other order; each figure is the mean of its
    two passes, so load that drifts during the phase weighs on both alike.
    """
    result: dict[str, Any] = {"k": BASE_K, "runs": plan.throughput_runs, "concurrency": list(plan.concurrency)}
    queues = {count: f"airlock-bench-p{count}-{uuid.uuid4().hex[:8]}" for count in (1, 2)}
    logs = {count: scenario.root / f"worker-{count}p.log" for count in (1, 2)}
    async with contextlib.AsyncExitStack() as stack:
        for count, queue in queues.items():
            env = durable_runs.worker_env(scenario, address, queue)
            await stack.enter_async_context(
                durable_runs.worker_process(env, logs[count], script, args=("--processes", str(count)), processes=count)
            )
            for _ in range(WARMUP_PER_PROCESS * count):
                await durable_runs.run(client, queue, reader_agent(BASE_K), PROMPT)

        async def measured(count: int, level: int) -> float:
            async def one() -> None:
                await durable_runs.run(client, queues[count], reader_agent(BASE_K), PROMPT)

            return await throughput(one, plan.throughput_runs, level)

        for level in plan.concurrency:
            samples: dict[int, list[float]] = {1: [], 2: []}
            for order in ((1, 2), (2, 1)):
                for count in order:
                    samples[count].append(await measured(count, level))
            p1, p2 = (sum(samples[count]) / len(samples[count]) for count in (1, 2))
            result[f"c{level}"] = {"p1_rps": p1, "p2_rps": p2, "speedup": p2 / p1, "samples": samples}
    for count in (1, 2):
        result[f"p{count}_log"] = durable_runs.log_problems(logs[count])
    return result


def _meters(bench: Bench) -> None:
    [temporal] = child_pids(os.getpid(), "start-dev")
    [plain_mcp] = child_pids(os.getpid(), "mcp_servers.tickets")
    [worker_mcp] = child_pids(bench.worker.pid, "mcp_servers.tickets")
    bench.cpu["durable"] = CpuMeter({"worker": bench.worker.pid, "worker_mcp": worker_mcp, "temporal": temporal})
    bench.cpu["plain"] = CpuMeter({"plain_mcp": plain_mcp})


def _anchor_meter(bench: Bench) -> None:
    # The anchor connects to its MCP server on its first tool call, not at start-up.
    [temporal] = child_pids(os.getpid(), "start-dev")
    [anchor_mcp] = child_pids(bench.anchor_worker.pid, "mcp_servers.tickets")
    bench.cpu["anchor"] = CpuMeter({"worker": bench.anchor_worker.pid, "worker_mcp": anchor_mcp, "temporal": temporal})


async def _phases(
    bench: Bench, scenario: Scenario, address: str, timings: dict[str, float], profile: Path | None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    _meters(bench)
    with phase("warm-up", timings):
        await warm_up(bench)
    _anchor_meter(bench)
    async with py_spy(bench.worker.pid, profile):
        with phase("1. sequential", timings):
            results["sequential"] = await sequential(bench)
        with phase("2. throughput", timings):
            results["throughput"] = await throughput_phase(bench)
    results["cpu"] = cpu_per_step(bench)
    with phase("4. history and latency per step", timings):
        results["history"] = await history_phase(bench)
    results["history_marginal_bytes_per_step"] = marginal_bytes(results["history"])
    results["anchor_history_marginal_bytes_per_step"] = marginal_bytes(results["history"], "anchor_")
    with phase("5. approval latency", timings):
        results["approval"] = await approvals(bench)
    with phase("10. live run events", timings):
        results["events"] = await run_events.event_phase(bench.client, bench.task_queue, bench.plan.approvals)
    with phase("8. the Temporal floor", timings):
        results["floor"] = await floor_phase(bench, scenario, address)
    return results


async def main_async(plan: Plan, options: Options) -> dict[str, Any]:
    """The whole benchmark, bounded by the plan's hard time limit."""
    began = time.perf_counter()
    load_before = os.getloadavg()
    installing = time.perf_counter()
    # Not under the hard limit: the first run installs the anchor venv from the package index.
    installed_now = await asyncio.to_thread(anchor_runs.ensure_venv)
    install_s = time.perf_counter() - installing
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as tmp:
        scenario = build(Path(tmp), plan.ks)
        async with asyncio.timeout(plan.hard_limit_s):
            results = await measure_all(plan, scenario, options)
    results.update(
        {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": plan.mode,
            "plan": asdict(plan),
            "worker_script": str(options.worker),
            "machine": report.machine(),
            "elapsed_s": time.perf_counter() - began,
            "anchor": {
                "venv": str(anchor_runs.VENV),
                "installed_this_run": installed_now,
                "install_s": install_s,
                "versions": anchor_runs.installed_versions(),
            },
            # Other work on the machine skews every number: the 1-minute load before and after.
            "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        }
    )
    results["targets"] = report.targets(results)
    return results


def main() -> None:
    """Parse flags, run, print the table and the targets, write JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts, no 10,000 waiting runs; about 5 minutes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the worker with py-spy during phases 1-2 (needs `pip install py-spy`)",
    )
    parser.add_argument(
        "--worker",
        type=Path,
        default=durable_runs.WORKER_SCRIPT,
        metavar="SCRIPT",
        help="worker script to run (default: worker.py); to compare a variant worker",
    )
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
    print(f"plot: {RESULTS_DIR / 'history_and_latency.png'}" if plotted else "plot: skipped (pip install matplotlib)")
    if profile is not None and profile.exists():
        print(f"\nworker profile ({profile}), top frames by own samples:\n{summarise(profile)}")


if __name__ == "__main__":
    main()
