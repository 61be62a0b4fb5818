"""PipelineWorkflow end to end: child runs with their own gates, templates, conditions, failures,
restarts and cancellation — real Temporal, real MCP over stdio, scripted model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from runtime.settings import PROJECT_ROOT
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import SUPPORT_AGENT, TICKETS_STDIO, airlock_worker, make_project
from tests.support.runs import decision, failure_of, temporal_cli, workflow_id
from workflows.payloads import PipelineResult

GATED_SUPPORT = SUPPORT_AGENT.replace('"search_*" = "auto"', '"search_*" = "auto"\n"*_ticket" = "approve"')
ECHO_AGENT = """
name = "echo"
instructions = "You repeat what you are given."
"""
SCRIPT = {
    "echo": [{"message": "echo: {input}"}],
    "broken": [],  # no steps: its first model call fails with ModelError
    "support": [
        {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-4", "text": "Looking."}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-4", "resolution": "fixed"}}},
        {"message": "Commented on and closed T-4."},
    ],
}
AGENTS = {"echo": ECHO_AGENT, "broken": ECHO_AGENT.replace("echo", "broken"), "support": GATED_SUPPORT}


async def pipeline_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The pipeline's `status` query as plain JSON."""
    return await handle.query("status", result_type=dict)


async def wait_pipeline_pending(handle: WorkflowHandle[Any, Any], tool: str) -> dict[str, Any]:
    """Wait until the pipeline lists a pending approval of `tool` in one of its children."""

    async def check() -> dict[str, Any] | None:
        pending = (await pipeline_status(handle))["pending"]
        return next((p for p in pending if p["tool"] == tool), None)

    return await wait_for(check, what=f"a pending {tool} in the pipeline's status")


async def assert_all_replay(client: Client, handle: WorkflowHandle[Any, Any], steps: list[str]) -> None:
    """The pipeline's history and each child's replay without non-determinism."""
    await assert_replays(handle)
    for step in steps:
        await assert_replays(client.get_workflow_handle(f"{handle.id}/{step}"))


async def test_bundled_incident_pipeline_from_the_cli(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(
        tmp_path,
        agents_dir=PROJECT_ROOT / "agents",
        scripted_model_file=PROJECT_ROOT / "agents" / "scripted.json",
    )
    pipeline_id = workflow_id("incident")
    async with airlock_worker(client, project):
        await temporal_cli(
            temporal_env,
            "workflow",
            "start",
            "--type",
            "PipelineWorkflow",
            "--task-queue",
            project.settings.task_queue,
            "--workflow-id",
            pipeline_id,
            "--input",
            json.dumps({"pipeline": "incident", "input": "T-1", "requester": "carol"}),
        )
        handle = client.get_workflow_handle(pipeline_id)
        pending = await wait_pipeline_pending(handle, "close_ticket")
        assert pending["workflow_id"] == f"{pipeline_id}/fix"
        assert pending["approve_command"].startswith(
            f"airlock approve {pipeline_id}/fix {pending['call_id']} --sha256 "
        )
        status = await pipeline_status(handle)
        assert (status["state"], status["current"]) == ("awaiting_approval", "fix")
        assert [s["status"] for s in status["steps"]] == ["completed", "awaiting_approval", "pending"]
        assert count_writes(project.tickets_db, "close_ticket") == 0

        # The approver signals the child by its predictable id, exactly as the status says.
        await temporal_cli(
            temporal_env,
            "workflow",
            "signal",
            "--workflow-id",
            pending["workflow_id"],
            "--name",
            "approve",
            "--input",
            json.dumps(decision(pending, "alice")),
        )
        out = await temporal_cli(temporal_env, "workflow", "result", "--workflow-id", pipeline_id, "-o", "json")
    assert json.loads(out)["result"]["status"] == "completed"
    # The CLI prints empty lists as null, so the typed result is read through the client.
    result = await client.get_workflow_handle(pipeline_id, result_type=PipelineResult).result()
    triage, fix, summary = result.steps
    assert (triage.status, fix.status, summary.status) == ("completed", "completed", "completed")
    assert "Needs a fix: yes" in triage.output
    assert [(a.tool, a.decided_by, a.outcome) for a in fix.approvals] == [("close_ticket", "alice", "ok")]
    # The summary step was given the earlier outputs through its template, and shows them.
    assert result.output == summary.output
    assert "Write the hand-over note for ticket T-1." in result.output
    assert f"Triage: {triage.output}" in result.output
    assert f"Fix (completed): {fix.output}" in result.output
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_all_replay(client, handle, ["triage", "fix", "summary"])


async def test_failing_step_stops_the_pipeline(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents=AGENTS, script=SCRIPT)
    steps = [
        {"name": "first", "agent": "echo", "input": "one"},
        {"name": "bad", "agent": "broken"},
        {"name": "never", "agent": "echo"},
    ]
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": steps, "input": "x"},
            id=workflow_id("stop"),
            task_queue=project.settings.task_queue,
        )
        cause = await failure_of(handle)
        status = await pipeline_status(handle)
    assert cause.type == "PipelineError"
    assert "stopped at step 'bad'" in cause.message and "ModelError" in cause.message
    [partial] = cause.details
    assert [s["status"] for s in partial["steps"]] == ["completed", "failed", "pending"]
    assert status["state"] == "failed"
    assert_no_task_failures(await handle.fetch_history())
    await assert_all_replay(client, handle, ["first", "bad"])


async def test_continue_after_failure_and_conditions(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents=AGENTS, script=SCRIPT)
    steps = [
        {"name": "bad", "agent": "broken", "on_failure": "continue"},
        {
            "name": "report",
            "agent": "echo",
            "input": "bad was {{ steps.bad.status }}",
            "when": {"step": "bad", "status": "failed"},
        },
        {"name": "skipped", "agent": "echo", "when": {"step": "report", "contains": "completed"}},
        {
            "name": "last",
            "agent": "echo",
            "input": "{{ input }} / {{ steps.report.output }} / {{ steps.skipped.status }}",
        },
    ]
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": steps, "input": "start"},
            id=workflow_id("continue"),
            task_queue=project.settings.task_queue,
            result_type=PipelineResult,
        )
        result = await handle.result()
    assert [s.status for s in result.steps] == ["failed", "completed", "skipped", "completed"]
    assert result.steps[0].error is not None and result.steps[0].error.startswith("ModelError:")
    assert result.steps[1].output == "echo: bad was failed"
    assert result.output == "echo: start / echo: bad was failed / skipped"
    # A skipped step starts no child run.
    assert [run async for run in client.list_workflows(f'WorkflowId = "{handle.id}/skipped"')] == []
    await assert_all_replay(client, handle, ["bad", "report", "last"])


async def test_worker_restart_mid_pipeline(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents=AGENTS, script=SCRIPT)
    steps = [{"name": "fix", "agent": "support", "input": "Fix T-4"}, {"name": "after", "agent": "echo"}]
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": steps, "input": "done", "requester": "carol"},
            id=workflow_id("restart"),
            task_queue=project.settings.task_queue,
            result_type=PipelineResult,
        )
        comment = await wait_pipeline_pending(handle, "comment_on_ticket")
    # No worker now: the decision waits in Temporal until one comes back.
    child = client.get_workflow_handle(comment["workflow_id"])
    await child.signal("approve", decision(comment, "alice"))
    async with airlock_worker(client, project):
        close = await wait_pipeline_pending(handle, "close_ticket")
        await child.signal("approve", decision(close, "bob"))
        result = await handle.result()
    assert [s.status for s in result.steps] == ["completed", "completed"]
    assert result.output == "echo: done"
    assert count_writes(project.tickets_db, "comment_on_ticket") == 1
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_all_replay(client, handle, ["fix", "after"])


async def test_cancel_mid_pipeline_keeps_completed_writes_in_the_audit(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents=AGENTS, script=SCRIPT)
    steps = [{"name": "fix", "agent": "support", "input": "Fix T-4"}, {"name": "after", "agent": "echo"}]
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": steps, "input": "x", "requester": "carol"},
            id=workflow_id("cancel"),
            task_queue=project.settings.task_queue,
        )
        comment = await wait_pipeline_pending(handle, "comment_on_ticket")
        child = client.get_workflow_handle(comment["workflow_id"])
        await child.signal("approve", decision(comment, "alice"))
        await wait_pipeline_pending(handle, "close_ticket")
        await handle.cancel()
        try:
            await asyncio.wait_for(handle.result(), 30)
            raise AssertionError("a cancelled pipeline must not complete")
        except WorkflowFailureError as err:
            assert isinstance(err.cause, CancelledError)
        child_status = (await child.describe()).status
        audit = await child.query("audit", result_type=list)
        status = await pipeline_status(handle)
    assert child_status == WorkflowExecutionStatus.CANCELED
    assert [(e["event"], e["tool"]) for e in audit] == [
        ("requested", "comment_on_ticket"),
        ("approved", "comment_on_ticket"),
        ("outcome", "comment_on_ticket"),
        ("requested", "close_ticket"),
    ]
    assert audit[2]["outcome"] == "ok"
    assert (status["state"], [s["status"] for s in status["steps"]]) == ("cancelled", ["cancelled", "pending"])
    assert count_writes(project.tickets_db, "comment_on_ticket") == 1
    assert count_writes(project.tickets_db, "close_ticket") == 0
    assert [run async for run in client.list_workflows(f'WorkflowId = "{handle.id}/after"')] == []
    await assert_all_replay(client, handle, ["fix"])


async def test_bad_inline_pipelines_are_refused(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, agents=AGENTS, script=SCRIPT, servers=TICKETS_STDIO)
    cases = [
        ({"steps": [{"name": "a", "agent": "nobody"}]}, "steps[0].agent: unknown agent 'nobody'"),
        (
            {
                "steps": [
                    {"name": "a", "agent": "echo", "input": "{{ steps.b.output }}"},
                    {"name": "b", "agent": "echo"},
                ]
            },
            "runs after 'a'",
        ),
        ({"pipeline": "incident", "steps": [{"name": "a", "agent": "echo"}]}, "exactly one of 'pipeline'"),
        ({"pipeline": "nope"}, "unknown pipeline 'nope'"),
        ({"steps": [{"name": "A b", "agent": "echo"}]}, "steps.0.name"),
        ("not an object", "PipelineWorkflow input"),
    ]
    async with airlock_worker(client, project):
        for payload, expected in cases:
            handle = await client.start_workflow(
                "PipelineWorkflow",
                payload,
                id=workflow_id("bad-pipeline"),
                task_queue=project.settings.task_queue,
            )
            cause = await failure_of(handle)
            assert cause.type == "InvalidInputError", cause
            assert expected in cause.message, cause.message
            assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
