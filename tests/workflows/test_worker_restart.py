"""Workers stopped or killed mid-run: runs complete, and no completed write happens twice."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.mcp_faults import hold_answer, stdio_tickets
from tests.support.project import AUTO_COMMENT_AGENT, airlock_worker, make_project
from tests.support.runs import decision, failure_of, wait_pending, workflow_id
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

SCRIPT = {
    "support": [
        {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-2", "text": "looking"}}},
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-2", "text": "closed"}}},
        {"message": "Closed T-2."},
    ]
}


async def test_worker_stopped_mid_run_resumes_without_repeating_writes(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents={"support": AUTO_COMMENT_AGENT}, script=SCRIPT)
    request = AgentRequest(agent="support", input="Close T-2", requester="carol")
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            request,
            id=workflow_id("restart"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
    # The first worker is gone, with one write done and one waiting for approval.
    assert count_writes(project.tickets_db, "comment_on_ticket") == 1
    async with airlock_worker(client, project):
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert result.output == "Closed T-2."
    assert count_writes(project.tickets_db, "comment_on_ticket") == 2
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


async def test_worker_killed_after_write_reached_server_applies_it_once(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    servers = stdio_tickets()
    script = {"support": [SCRIPT["support"][1], SCRIPT["support"][2], SCRIPT["support"][4]]}
    project = make_project(tmp_path, agents={"support": AUTO_COMMENT_AGENT}, script=script, servers=servers)
    address = temporal_env.client.service_client.config.target_host
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-2", requester="carol"),
        id=workflow_id("sigkill"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )
    # The server commits the approved close, then holds its answer long enough to kill the worker.
    async with worker_process(project_env(project, address, **hold_answer("close_ticket", 30))) as first:
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))

        async def close_applied() -> bool:
            return count_writes(project.tickets_db, "close_ticket") == 1

        await wait_for(close_applied, what="the approved close to reach the server")
        first.kill()
        await first.proc.wait()
    async with worker_process(project_env(project, address)):
        result = await handle.result()
    assert result.output == "Closed T-2."
    assert count_writes(project.tickets_db, "close_ticket") == 1, "the retried write was applied twice"
    [record] = result.approvals
    assert record.outcome == "ok"
    history = json.loads((await handle.fetch_history()).to_json())
    attempts = [
        e["activityTaskStartedEventAttributes"]["attempt"]
        for e in history["events"]
        if "activityTaskStartedEventAttributes" in e
    ]
    # close_ticket is the only regular activity (reads and model calls are local activities).
    assert attempts[0] >= 2, f"the close should have been retried after the kill: {attempts}"
    await assert_replays(handle)


async def test_approvals_survive_continue_as_new(client: Client, tmp_path: Path) -> None:
    script = {
        "support": [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2"}}},
            {"tool_call": {"name": "assign_ticket", "arguments": {"ticket_id": "T-2", "assignee": "dana"}}},
            {"message": "Closed and assigned T-2."},
        ]
    }
    gated = 'close_ticket = "approve"\nassign_ticket = "approve"'
    agent = AUTO_COMMENT_AGENT.replace('close_ticket = "approve"', gated)
    # Any history is "long": the run continues as new after every approval round.
    project = make_project(tmp_path, agents={"support": agent}, script=script, max_history_events=1)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close and assign T-2", requester="carol"),
            id=workflow_id("can"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        first_run = (await handle.describe()).run_id
        [close] = await wait_pending(handle)
        await handle.signal("approve", decision(close, "alice"))

        async def assign_pending() -> list[dict[str, object]] | None:
            pending = await handle.query("pending_approvals", result_type=list)
            return pending if pending and pending[0]["tool"] == "assign_ticket" else None

        [assign] = await wait_for(assign_pending, what="the second approval, in the continued run")
        assert (await handle.describe()).run_id != first_run, "the run should have continued as new"
        await handle.signal("approve", decision(assign, "alice"))
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
    assert [(r.tool, r.decision, r.decided_by, r.outcome) for r in result.approvals] == [
        ("close_ticket", "approved", "alice", "ok"),
        ("assign_ticket", "approved", "alice", "ok"),
    ]
    assert [e["event"] for e in audit] == ["requested", "approved", "outcome"] * 2
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert count_writes(project.tickets_db, "assign_ticket") == 1
    assert result.tool_calls == 2 and result.usage.requests == 3
    await assert_replays(handle)
    await assert_replays(client.get_workflow_handle(handle.id, run_id=first_run))


async def test_client_supplied_checkpoint_is_refused(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            {
                "agent": "support",
                "input": "x",
                "checkpoint": {"plan": {"root": "support", "agents": {}}, "run_state": "{}"},
            },
            id=workflow_id("forged"),
            task_queue=project.settings.task_queue,
        )
        cause = await failure_of(handle)
    assert cause.type == "InvalidInputError"
    assert "checkpoint" in cause.message
