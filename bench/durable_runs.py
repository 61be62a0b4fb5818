"""The durable side: `python worker.py` as a subprocess, and `AgentWorkflow` runs through the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from measure import process_cpu_seconds
from scenario import APPROVER, WRITER_AGENT, Scenario
from temporalio.client import Client, WorkflowHandle

from workflows.payloads import AgentRequest, AgentResult, Approve

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = REPO_ROOT / "worker.py"
READY_DEADLINE_S = 60.0
RUN_DEADLINE_S = 120.0
STOP_DEADLINE_S = 20.0
READY_LINE = '"worker ready"'


@dataclass
class WorkerProcess:
    """A running `python worker.py` and when it became ready."""

    proc: asyncio.subprocess.Process
    log_file: Path
    spawned_at: float
    ready_s: float = 0.0

    @property
    def pid(self) -> int:
        """Process id of the worker."""
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU the worker process (all its threads) has used so far."""
        return process_cpu_seconds(self.pid)


def worker_env(scenario: Scenario, address: str, task_queue: str) -> dict[str, str]:
    """Settings of the worker subprocess: the scenario's files, the scripted model, the dev server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_"))}
    env.update(
        {
            "AIRLOCK_TEMPORAL_ADDRESS": address,
            "AIRLOCK_TASK_QUEUE": task_queue,
            "AIRLOCK_AGENTS_DIR": str(scenario.agents_dir),
            "AIRLOCK_MCP_SERVERS_FILE": str(scenario.servers_file),
            "AIRLOCK_MODEL_PROVIDER": "scripted",
            "AIRLOCK_SCRIPTED_MODEL_FILE": str(scenario.script_file),
            "AIRLOCK_DATA_DIR": str(scenario.root / "data"),
            "AIRLOCK_LOG_FORMAT": "json",
            "TICKETS_DB": str(scenario.durable_db),
        }
    )
    return env


async def _wait_ready(worker: WorkerProcess, processes: int) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if worker.log_file.read_text(errors="replace").count(READY_LINE) >= processes:
            worker.ready_s = time.perf_counter() - worker.spawned_at
            return
        if worker.proc.returncode is not None:
            break
        await asyncio.sleep(0.005)
    raise RuntimeError(f"worker not ready (exit {worker.proc.returncode}); log:\n{worker.log_file.read_text()}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def worker_process(
    env: dict[str, str],
    log_file: Path,
    script: Path = WORKER_SCRIPT,
    *,
    python: str = sys.executable,
    args: Sequence[str] = (),
    processes: int = 1,
) -> AsyncIterator[WorkerProcess]:
    """Start `python worker.py` (or a variant `script`, or another venv's `python`), wait until it
    logs "worker ready" (once per worker process), stop it."""
    with log_file.open("wb") as sink:
        spawned_at = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            python,
            str(script),
            *args,
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
        )
    worker = WorkerProcess(proc, log_file, spawned_at)
    try:
        await _wait_ready(worker, processes)
        yield worker
    finally:
        await _stop(proc)


def log_problems(log_file: Path, keep: int = 3) -> dict[str, Any]:
    """Warning and error lines the worker logged: retries and failures hide here, not in timings."""
    problems = [
        line
        for line in log_file.read_text(errors="replace").splitlines()
        if '"level": "warning"' in line or '"level": "error"' in line
    ]
    return {"problems": len(problems), "first": problems[:keep]}


async def start(client: Client, task_queue: str, agent: str, prompt: str) -> WorkflowHandle[Any, AgentResult]:
    """Start one `AgentWorkflow` run under a unique id."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent=agent, input=prompt, requester="bench"),
        id=f"bench-{agent}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        result_type=AgentResult,
    )


async def run(
    client: Client, task_queue: str, agent: str, prompt: str
) -> tuple[float, WorkflowHandle[Any, AgentResult]]:
    """Start one run and await its result; returns (wall seconds, handle)."""
    began = time.perf_counter()
    handle = await start(client, task_queue, agent, prompt)
    await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    return time.perf_counter() - began, handle


async def history_size(handle: WorkflowHandle[Any, Any]) -> tuple[int, int, int]:
    """(events, summed protobuf bytes of the events, bytes of the history as JSON)."""
    history = await handle.fetch_history()
    proto_bytes = sum(event.ByteSize() for event in history.events)
    return len(history.events), proto_bytes, len(history.to_json())


async def pending_call(handle: WorkflowHandle[Any, Any], poll_s: float = 0.01) -> dict[str, Any]:
    """The first call `handle` waits on at its gate, polled until it is there (within the run deadline)."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    while time.monotonic() < deadline:
        pending = await handle.query("pending_approvals", result_type=list)
        if pending:
            return dict(pending[0])
        await asyncio.sleep(poll_s)
    raise TimeoutError(f"{handle.id} never reached its approval gate")


def write_applied_at(log_file: Path, workflow_id: str) -> float:
    """When the tickets server applied the run's gated write, on the wall clock, from its own log line.

    The worker's stdio servers share its stderr, so the server's `write applied` line (timestamped
    to the microsecond when the write commits) is in the worker's log. Reading it afterwards keeps
    the measurement from competing for CPU with the run it measures, as polling the database would.
    """
    key = f"idempotency_key={workflow_id}/"
    for line in log_file.read_text(errors="replace").splitlines():
        if "write applied" in line and key in line:
            return datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
    raise RuntimeError(f"the tickets server logged no write for {workflow_id}")


async def approval_latency(client: Client, task_queue: str, log_file: Path) -> float:
    """Seconds from the `approve` signal being accepted to the gated write being applied by the server."""
    handle = await start(client, task_queue, WRITER_AGENT, "Comment on T-3.")
    call = await pending_call(handle)
    await handle.signal(
        "approve", Approve(call_id=call["call_id"], approver=APPROVER, arguments_sha256=call["arguments_sha256"])
    )
    accepted = time.time()
    result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    if [record.outcome for record in result.approvals] != ["ok"]:
        raise RuntimeError(f"{handle.id}: unexpected approvals {result.approvals}")
    return write_applied_at(log_file, handle.id) - accepted
