"""The scale figure: N gated runs waiting at once on one Airlock worker, listed, then all approved."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import durable_runs
from measure import process_rss_bytes
from scenario import APPROVER, WRITER_AGENT
from temporalio.client import Client, WorkflowHandle

from workflows.payloads import AgentResult, Review

# Bounds on what the bench has in flight: starts, gate polls and approvals.
CONCURRENCY = 50
WAIT_DEADLINE_S = 120.0
CLI_DEADLINE_S = 120.0
POLL_S = 0.05


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
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while time.monotonic() < deadline:
        if (await client.count_workflows(query)).count >= count:
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"fewer than {count} runs listed as waiting after {WAIT_DEADLINE_S:.0f} s")


async def _cli_pending(address: str) -> tuple[float, int]:
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        airlock_cli(),
        "--address",
        address,
        "pending",
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
    return seconds, len(json.loads(out))


async def waiting_runs(
    client: Client, address: str, task_queue: str, worker: durable_runs.WorkerProcess, runs: int
) -> dict[str, Any]:
    """Start `runs` gated runs, wait until all wait at the gate, measure the worker and the CLI, approve all."""
    query = f'AirlockState="awaiting_approval" AND ExecutionStatus="Running" AND AirlockAgent="{WRITER_AGENT}"'
    rss_before = process_rss_bytes(worker.pid)
    began = time.perf_counter()
    handles: list[WorkflowHandle[Any, AgentResult]] = await _bounded(
        list(range(runs)), lambda _: durable_runs.start(client, task_queue, WRITER_AGENT, "Comment on T-3.")
    )
    calls: list[dict[str, Any]] = await _bounded(handles, lambda h: durable_runs.pending_call(h, POLL_S))
    await _all_waiting(client, query, runs)
    all_waiting_s = time.perf_counter() - began
    rss_waiting = process_rss_bytes(worker.pid)
    cli_s, listed = await _cli_pending(address)
    if listed != runs:
        raise RuntimeError(f"airlock pending listed {listed} waiting calls, expected {runs}")

    async def approve(pair: tuple[WorkflowHandle[Any, AgentResult], dict[str, Any]]) -> None:
        handle, call = pair
        await handle.execute_update(
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
        result = await asyncio.wait_for(handle.result(), durable_runs.RUN_DEADLINE_S)
        if [record.outcome for record in result.approvals] != ["ok"]:
            raise RuntimeError(f"{handle.id}: unexpected approvals {result.approvals}")

    approving = time.perf_counter()
    await _bounded(list(zip(handles, calls, strict=True)), approve)
    updates_s = time.perf_counter() - approving
    await _bounded(handles, finished)
    approved_s = time.perf_counter() - approving
    return {
        "runs": runs,
        "concurrency": CONCURRENCY,
        "start_to_all_waiting_s": all_waiting_s,
        "worker_rss_mib_before": rss_before / 2**20,
        "worker_rss_mib_waiting": rss_waiting / 2**20,
        "worker_rss_kib_per_waiting_run": (rss_waiting - rss_before) / 1024 / runs,
        "cli_pending_s": cli_s,
        "cli_listed": listed,
        "approve_updates_s": updates_s,
        "approve_to_all_completed_s": approved_s,
        "note": f"{runs} `{WRITER_AGENT}` runs paused at the gate at once on one worker; RSS from "
        "/proc/<worker>/status VmRSS (the worker alone, not its MCP child); `airlock pending -o json` "
        "as a subprocess; then {runs} `review` updates, at most "
        f"{CONCURRENCY} in flight, until every run completed",
    }
