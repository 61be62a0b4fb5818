"""The scale figures: N gated runs waiting at once on one Airlock worker, listed, then all approved,
for each N of the plan (500, 2,000, 10,000), so the cost per run can be compared across N."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import durable_runs
from measure import process_cpu_seconds, process_rss_bytes
from scenario import APPROVER, WRITER_AGENT
from temporalio.client import Client, WorkflowHandle

from workflows.payloads import AgentResult, Review

# Bounds on what the bench has in flight: starts and approvals.
CONCURRENCY = 50
# Visibility is polled for the count of waiting runs at this pace: cheap for the server, and the
# workers answer no query until the CLI lists the runs (polling each run would cost the worker a
# query per run and poll, replaying runs that are not cached).
COUNT_POLL_S = 0.25
CLI_DEADLINE_S = 300.0
# Pausing runs at the gate goes at a few dozen runs a second on 2 cores; 10,000 take minutes.
WAIT_S_PER_RUN = 0.1
WAIT_FLOOR_S = 120.0


def airlock_cli() -> str:
    """The installed `airlock` console script of this interpreter's venv."""
    return str(Path(sys.executable).parent / "airlock")


async def _bounded(items: list[Any], work: Any) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Any) -> Any:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(one(item) for item in items))


async def _all_waiting(client: Client, query: str, count: int) -> None:
    # Visibility lags the workflows a little: poll the count until every run is listed as waiting.
    limit = max(WAIT_FLOOR_S, count * WAIT_S_PER_RUN)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (await client.count_workflows(query)).count >= count:
            return
        await asyncio.sleep(COUNT_POLL_S)
    raise TimeoutError(f"fewer than {count} runs listed as waiting after {limit:.0f} s")


async def cli_pending(address: str) -> tuple[float, list[dict[str, Any]]]:
    """`airlock pending -o json` as a subprocess: (seconds it took, the calls it listed)."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        airlock_cli(),
        "--address",
        address,
        "pending",
        "--agent",
        WRITER_AGENT,
        "-o",
        "json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"airlock pending exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return seconds, json.loads(out)


async def waiting_runs(
    client: Client, address: str, task_queue: str, worker: durable_runs.WorkerProcess, runs: int
) -> dict[str, Any]:
    """Start `runs` gated runs, wait until all wait at the gate, measure the worker and the CLI, approve all.

    The calls to approve come from the CLI's listing (workflow id, call id, hash), as an approver's
    script would take them.
    """
    query = f'AirlockState="awaiting_approval" AND ExecutionStatus="Running" AND AirlockAgent="{WRITER_AGENT}"'
    rss_before = process_rss_bytes(worker.pid)
    cpu_began = process_cpu_seconds(worker.pid)
    began = time.perf_counter()
    handles: list[WorkflowHandle[Any, AgentResult]] = await _bounded(
        list(range(runs)), lambda _: durable_runs.start(client, task_queue, WRITER_AGENT, "Comment on T-3.")
    )
    await _all_waiting(client, query, runs)
    all_waiting_s = time.perf_counter() - began
    rss_waiting = process_rss_bytes(worker.pid)
    cpu_waiting = process_cpu_seconds(worker.pid)
    cli_s, calls = await cli_pending(address)
    cpu_listed = process_cpu_seconds(worker.pid)
    if len(calls) != runs:
        raise RuntimeError(f"airlock pending listed {len(calls)} waiting calls, expected {runs}")

    async def approve(call: dict[str, Any]) -> None:
        await client.get_workflow_handle(call["workflow_id"], run_id=call["run_id"]).execute_update(
            "review",
            Review(
                call_id=call["call_id"],
                approver=APPROVER,
                arguments_sha256=call["arguments_sha256"],
                decision="approve",
            ),
            result_type=dict,
        )

    async def finished(handle: WorkflowHandle[Any, AgentResult]) -> None:
        result = await asyncio.wait_for(handle.result(), durable_runs.RUN_DEADLINE_S + runs * WAIT_S_PER_RUN)
        if [record.outcome for record in result.approvals] != ["ok"]:
            raise RuntimeError(f"{handle.id}: unexpected approvals {result.approvals}")

    # In the order the runs were started: the oldest first, as a queue of approvals is worked.
    order = {handle.id: index for index, handle in enumerate(handles)}
    calls.sort(key=lambda call: order[call["workflow_id"]])
    approving = time.perf_counter()
    await _bounded(calls, approve)
    updates_s = time.perf_counter() - approving
    await _bounded(handles, finished)
    approved_s = time.perf_counter() - approving
    cpu_done = process_cpu_seconds(worker.pid)
    return {
        "runs": runs,
        "concurrency": CONCURRENCY,
        "start_to_all_waiting_s": all_waiting_s,
        "worker_rss_mib_before": rss_before / 2**20,
        "worker_rss_mib_waiting": rss_waiting / 2**20,
        "worker_rss_kib_per_waiting_run": (rss_waiting - rss_before) / 1024 / runs,
        "cli_pending_s": cli_s,
        "cli_listed": len(calls),
        "approve_updates_s": updates_s,
        "approve_to_all_completed_s": approved_s,
        "approve_ms_per_run": approved_s * 1000 / runs,
        "worker_cpu_ms_per_run_to_gate": (cpu_waiting - cpu_began) * 1000 / runs,
        "worker_cpu_ms_per_run_listed": (cpu_listed - cpu_waiting) * 1000 / runs,
        "worker_cpu_ms_per_approved_run": (cpu_done - cpu_listed) * 1000 / runs,
        "note": f"{runs} `{WRITER_AGENT}` runs paused at the gate at once on one worker; RSS from "
        "/proc/<worker>/status VmRSS (the worker alone, not its MCP child); `airlock pending -o json` "
        f"as a subprocess; then {runs} `review` updates on the calls it listed, oldest run first, at "
        f"most {CONCURRENCY} in flight, until every run completed",
    }


async def scale_phase(
    client: Client, address: str, task_queue: str, worker: durable_runs.WorkerProcess, sizes: tuple[int, ...]
) -> dict[str, Any]:
    """`waiting_runs` for each size in turn (each batch done before the next starts)."""
    return {"rows": [await waiting_runs(client, address, task_queue, worker, runs) for runs in sizes]}
