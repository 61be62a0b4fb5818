"""Deeply nested input fails cleanly: bounded depth, typed failures, no task loops.

JSON nested a few hundred levels is a few kilobytes of brackets, yet it is past pydantic's
parser limit (and, at a thousand, Python's own). Sent as a workflow input from the Python client
and from the `temporal` CLI, it fails the run with `InvalidInputError`; in a signal it is audited
as refused and changes nothing; in a `review` update it is refused to its sender.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.approvals import CLOSE_SCRIPT, audit_of, start, wait_refused
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, pending_of, temporal_cli, wait_pending, workflow_id
from workflows.decoding import MAX_INPUT_DEPTH

RUN_DEADLINE_S = 30.0
DEPTHS = (200, 1000, 5000)


def nested(levels: int) -> str:
    """A JSON array nested `levels` deep, as text: no Python object that deep is ever built."""
    return "[" * levels + "]" * levels


def raw_json(text: str) -> RawValue:
    """`text` sent as it is, as a JSON payload any client could send (the converter is bypassed)."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


def why(levels: int, what: str) -> str:
    """The error a value nested `levels` deep gets: too deep for Airlock, or for any JSON parser."""
    if levels < 900:  # Python's parser still reads it; Airlock's depth bound refuses it.
        return f"invalid {what}: nested deeper than {MAX_INPUT_DEPTH} levels"
    return f"invalid {what}: not JSON, or nested far deeper than {MAX_INPUT_DEPTH} levels"


async def failed_cleanly(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The run's typed failure, after checking it came without a task-retry loop and replays."""
    cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
    return cause


async def test_deep_agent_input_fails_the_run_from_python_and_the_cli(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    queue = project.settings.task_queue
    async with airlock_worker(client, project):
        handles: list[tuple[int, WorkflowHandle[Any, Any]]] = []
        for levels in DEPTHS:
            text = json.dumps(
                {"agent": "support", "input": "Close T-1.", "requester": "carol", "context": {"ticket": "__deep__"}}
            ).replace('"__deep__"', nested(levels))
            handles.append(
                (
                    levels,
                    await client.start_workflow(
                        "AgentWorkflow", raw_json(text), id=workflow_id(f"deep-{levels}"), task_queue=queue
                    ),
                )
            )
            cli_id = workflow_id(f"deep-cli-{levels}")
            await temporal_cli(
                temporal_env,
                "workflow",
                "start",
                "--type",
                "AgentWorkflow",
                "--task-queue",
                queue,
                "--workflow-id",
                cli_id,
                "--input",
                text,
            )
            handles.append((levels, client.get_workflow_handle(cli_id)))
        causes = [(levels, await failed_cleanly(handle)) for levels, handle in handles]
    for levels, cause in causes:
        assert (cause.type, cause.message) == ("InvalidInputError", why(levels, "AgentWorkflow input")), levels
    assert not project.tickets_db.exists(), "no run got as far as starting a tool server"


async def test_deep_signal_and_review_change_nothing(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "deep-signal")
        [pending] = await wait_pending(handle)
        valid = json.dumps(decision(pending, "alice", comment="__deep__"))
        # The whole payload is a valid approval of the pending call but for one deep field.
        await handle.signal("approve", raw_json(valid.replace('"__deep__"', nested(200))))
        await handle.signal("approve", raw_json(nested(200)))
        [deep_field, deep_payload] = await wait_refused(handle, 2)
        assert deep_field["call_id"] == pending["call_id"] and deep_field["actor"] == "alice"
        assert deep_field["reason"] == why(200, "approve signal")
        assert deep_payload["reason"] == why(200, "approve signal")
        assert await pending_of(handle) == [pending], "the call still waits, unchanged"

        review = json.dumps(decision(pending, "alice", decision="approve", reason="__deep__"))
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update("review", raw_json(review.replace('"__deep__"', nested(200))), result_type=dict)
        assert isinstance(failure.value.cause, ApplicationError)
        assert failure.value.cause.message == why(200, "review")
        assert await pending_of(handle) == [pending]
        assert count_writes(project.tickets_db) == 0

        await handle.signal("approve", decision(pending, "alice"))
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        audit = await audit_of(handle)
    assert [a.decided_by for a in result.approvals] == ["alice"]
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert [e["event"] for e in audit] == ["requested", "refused", "refused", "approved", "outcome"]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_deep_pipeline_input_fails_the_run(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handles = []
        for levels in DEPTHS:
            text = json.dumps(
                {
                    "steps": [{"name": "fix", "agent": "support"}],
                    "input": "T-1",
                    "requester": "carol",
                    "context": {"ticket": "__deep__"},
                }
            )
            handles.append(
                (
                    levels,
                    await client.start_workflow(
                        "PipelineWorkflow",
                        raw_json(text.replace('"__deep__"', nested(levels))),
                        id=workflow_id(f"deep-pipeline-{levels}"),
                        task_queue=project.settings.task_queue,
                    ),
                )
            )
        causes = [(levels, await failed_cleanly(handle)) for levels, handle in handles]
    for levels, cause in causes:
        assert (cause.type, cause.message) == ("InvalidInputError", why(levels, "PipelineWorkflow input")), levels
    assert not project.tickets_db.exists()
