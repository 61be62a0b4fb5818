"""`python worker.py --processes 2`: two workflow-worker processes under one supervisor. Runs started
from outside complete, both processes take workflow tasks, SIGTERM ends all of them, and a child
that dies takes the whole worker down with it (reported).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.support.airlock_cli import address_of
from tests.support.conditions import alive, child_pids, cmdline, condition, kill_if_alive, wait_for
from tests.support.histories import assert_replays
from tests.support.project import make_project
from tests.support.runs import workflow_id
from tests.support.worker_process import WorkerProcess, project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

READER = """
name = "reader"
instructions = "Read the ticket."
mcp_servers = ["tickets"]
[tools]
"get_*" = "auto"
"""
SCRIPT = {
    "reader": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "Read T-1."},
    ]
}
MAX_RUNS = 80
BATCH = 8


def workers_of(running: WorkerProcess) -> list[int]:
    """The supervisor's worker processes (its spawned children; not the MCP servers they start)."""
    return [pid for pid in child_pids(running.proc.pid) if "spawn_main" in cmdline(pid)]


async def task_workers(handle: WorkflowHandle[object, AgentResult]) -> set[int]:
    """The pids of the workers that completed the run's workflow tasks."""
    history = await handle.fetch_history()
    return {
        int(event.workflow_task_completed_event_attributes.identity.split("@", 1)[0])
        for event in history.events
        if event.HasField("workflow_task_completed_event_attributes")
    }


def ready_lines(running: WorkerProcess) -> int:
    """How many processes have said `worker ready` so far."""
    return sum('"worker ready"' in line for line in running.lines)


async def test_two_processes_share_the_runs_and_sigterm_stops_them_all(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, agents={"reader": READER}, script=SCRIPT)
    env = project_env(project, address_of(temporal_env))
    async with worker_process(env, "--processes", "2") as running:
        children = await wait_for(
            condition(lambda: len(workers_of(running)) == 2 and workers_of(running)),
            what="two worker processes",
        )
        try:
            await wait_for(condition(lambda: ready_lines(running) == 2), timeout=60, what="both processes ready")
            seen: set[int] = set()
            handles: list[WorkflowHandle[object, AgentResult]] = []
            # Runs are started in batches until both processes have taken workflow tasks.
            while seen != set(children) and len(handles) < MAX_RUNS:
                batch = [
                    await client.start_workflow(
                        "AgentWorkflow",
                        AgentRequest(agent="reader", input="Read T-1.", requester="carol"),
                        id=workflow_id("processes"),
                        task_queue=project.settings.task_queue,
                        result_type=AgentResult,
                    )
                    for _ in range(BATCH)
                ]
                results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in batch)), 60)
                assert [r.output for r in results] == ["Read T-1."] * BATCH
                for handle in batch:
                    seen |= await task_workers(handle)
                handles += batch
            assert seen == set(children), f"workflow tasks taken by {seen}, processes {children}"
            await assert_replays(handles[0])

            running.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(running.proc.wait(), 60) == 0
            assert not any(alive(pid) for pid in children), "SIGTERM to the supervisor ends every worker process"
        finally:
            for pid in children:
                kill_if_alive(pid)
    assert any('"worker processes stopped"' in line for line in running.lines)


async def test_a_worker_process_that_dies_is_reported_and_the_worker_exits(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, agents={"reader": READER}, script=SCRIPT)
    env = project_env(project, address_of(temporal_env), AIRLOCK_WORKER_PROCESSES="2")
    async with worker_process(env) as running:
        children = await wait_for(
            condition(lambda: len(workers_of(running)) == 2 and workers_of(running)),
            what="two worker processes",
        )
        try:
            await wait_for(condition(lambda: ready_lines(running) == 2), timeout=60, what="both processes ready")
            kill_if_alive(children[0])
            assert await asyncio.wait_for(running.proc.wait(), 60) == 1
            assert not alive(children[1]), "the other process is stopped too"
        finally:
            for pid in children:
                kill_if_alive(pid)
    died = [line for line in running.lines if "worker process died" in line]
    assert died and str(children[0]) in died[0] and "-9" in died[0]
