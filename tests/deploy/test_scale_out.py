"""Two worker processes on one task queue; the one holding runs is SIGKILLed just after their writes
are approved. Every run finishes on the other worker, and every write is applied exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.airlock_cli import address_of
from tests.support.histories import assert_replays
from tests.support.project import make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

RUNS = 4
RUN_DEADLINE_S = 90.0


def closer(index: int) -> str:
    """An agent that may only close ticket T-<index+1>, once approved by alice."""
    return f"""
name = "closer{index}"
instructions = "Close your ticket."
mcp_servers = ["tickets"]
[tools]
close_ticket = "approve"
[approval]
approvers = ["alice"]
"""


async def task_workers(handle: WorkflowHandle[object, AgentResult]) -> list[str]:
    """The identities of the workers that completed the run's workflow tasks, in order."""
    history = await handle.fetch_history()
    return [
        event.workflow_task_completed_event_attributes.identity
        for event in history.events
        if event.HasField("workflow_task_completed_event_attributes")
    ]


async def test_runs_of_a_killed_worker_finish_on_the_other_with_each_write_applied_once(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    script = {
        f"closer{i}": [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": f"T-{i + 1}", "resolution": "fixed"}}},
            {"message": f"Closed T-{i + 1}."},
        ]
        for i in range(RUNS)
    }
    project = make_project(tmp_path, agents={f"closer{i}": closer(i) for i in range(RUNS)}, script=script)
    env = project_env(project, address_of(temporal_env))
    async with worker_process(env) as first, worker_process(env) as second:
        handles = [
            await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent=f"closer{i}", input="Close it.", requester="carol"),
                id=workflow_id(f"scale-{i}"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            for i in range(RUNS)
        ]
        pending = [(await wait_pending(handle))[0] for handle in handles]
        holders = [(await task_workers(handle))[-1] for handle in handles]
        # Kill the worker that holds the most runs in its cache (it holds at least one).
        victim, survivor = sorted((first, second), key=lambda w: -sum(h.startswith(f"{w.proc.pid}@") for h in holders))
        moved = [h for h, holder in zip(handles, holders, strict=True) if holder.startswith(f"{victim.proc.pid}@")]
        assert moved
        for handle, call in zip(handles, pending, strict=True):
            await handle.signal("approve", decision(call, "alice"))
        victim.kill()
        await victim.proc.wait()
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), RUN_DEADLINE_S)
        assert survivor.proc.returncode is None
    assert victim.proc.returncode == -9
    assert [r.output for r in results] == [f"Closed T-{i + 1}." for i in range(RUNS)]
    assert [[(a.decision, a.outcome) for a in r.approvals] for r in results] == [[("approved", "ok")]] * RUNS
    assert count_writes(project.tickets_db, "close_ticket") == RUNS, "no write lost, none doubled"
    assert count_writes(project.tickets_db) == RUNS
    for handle in moved:
        finished_by = (await task_workers(handle))[-1]
        assert finished_by.startswith(f"{survivor.proc.pid}@"), "a run of the killed worker finished on the other"
    for handle in handles:
        await assert_replays(handle)
