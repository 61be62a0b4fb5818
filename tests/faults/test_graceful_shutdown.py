"""SIGTERM to a worker with a write in flight: it finishes the write, closes MCP, and exits cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.conditions import alive, child_pids, cmdline, kill_if_alive, wait_for
from tests.support.histories import assert_replays
from tests.support.mcp_faults import hold_answer, stdio_tickets
from tests.support.project import make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.worker_process import project_env, worker_process
from worker import GRACEFUL_SHUTDOWN
from workflows.payloads import AgentRequest, AgentResult

REPLY_DELAY_S = 3
SCRIPT = {
    "support": [
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"message": "Closed T-2."},
    ]
}


def events(history: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The attributes of every history event of one kind, e.g. `activityTaskCompleted`."""
    return [e[f"{kind}EventAttributes"] for e in history["events"] if f"{kind}EventAttributes" in e]


async def test_sigterm_lets_the_write_in_flight_finish_and_leaves_no_process_behind(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    servers = stdio_tickets()
    project = make_project(tmp_path, script=SCRIPT, servers=servers)
    address = temporal_env.client.service_client.config.target_host
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-2", requester="carol"),
        id=workflow_id("sigterm"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )
    tickets_child = 0
    try:
        # The server commits the close, then holds its answer: the write is in flight at SIGTERM.
        async with worker_process(project_env(project, address, **hold_answer("close_ticket", REPLY_DELAY_S))) as first:
            [pending] = await wait_pending(handle)
            [tickets_child] = [p for p in child_pids(first.proc.pid) if "mcp_servers.tickets" in cmdline(p)]
            await handle.signal("approve", decision(pending, "alice"))

            async def close_applied() -> bool:
                return count_writes(project.tickets_db, "close_ticket") == 1

            await wait_for(close_applied, what="the approved close to reach the server")
            first.proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            code = await asyncio.wait_for(first.proc.wait(), GRACEFUL_SHUTDOWN.total_seconds() + 10)
            stopped_in = time.monotonic() - stopping
            child_alive_after_exit = alive(tickets_child)
            first_pid, first_log = first.proc.pid, "".join(first.lines)
        async with worker_process(project_env(project, address)) as second:
            result = await handle.result()
            second_pid = second.proc.pid
    finally:
        if tickets_child:
            kill_if_alive(tickets_child)
    print(
        f"sigterm: worker exited {code} in {stopped_in:.2f}s; tickets child {tickets_child} "
        f"alive={child_alive_after_exit}"
    )
    assert code == 0
    assert not child_alive_after_exit, "the stdio MCP child outlived its worker"
    # It waited for the held answer, and no longer than the grace period.
    assert REPLY_DELAY_S - 1 < stopped_in < GRACEFUL_SHUTDOWN.total_seconds()
    logged = [json.loads(line)["event"] for line in first_log.splitlines() if line.startswith("{")]
    assert logged.index("shutting down") < logged.index("tool_call") < logged.index("worker stopped")
    assert result.output == "Closed T-2."
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = result.approvals
    assert record.outcome == "ok"
    history = json.loads((await handle.fetch_history()).to_json())
    # The write ran once, on the first worker, and its result was accepted from it ...
    [started] = events(history, "activityTaskStarted")
    [completed] = events(history, "activityTaskCompleted")
    assert started["attempt"] == 1
    assert completed["identity"].startswith(f"{first_pid}@")
    # ... while the next workflow task went to the new worker: the first had stopped polling.
    assert events(history, "workflowTaskStarted")[-1]["identity"].startswith(f"{second_pid}@")
    await assert_replays(handle)
