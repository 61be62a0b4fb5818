"""Malformed workflow input, unknown agents and malformed messages from any client.

Each run ends at once with a typed failure naming the field or value, or (for a signal, which
cannot answer) is audited as refused; none sends the workflow into a task-retry loop. Runs are
started from the Python client and from the `temporal` CLI with raw JSON, as other services do.
tests/workflows/test_agent_workflow.py and test_approvals.py cover the first few shapes (missing
`input`, an unknown field, `agent: 7`, signals that are a string, array or number from Python).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.approvals import CLOSE_SCRIPT, audit_of, start
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, pending_of, temporal_cli, wait_pending, workflow_id
from workflows.payloads import AgentRequest

RUN_DEADLINE_S = 30.0
MAX_INPUT = next(m.max_length for m in AgentRequest.model_fields["input"].metadata if hasattr(m, "max_length"))


async def failed_cleanly(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The run's typed failure, after checking it failed without a task-retry loop."""
    cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
    return cause


# (python value sent as the workflow's single argument, words the error must contain)
BAD_INPUTS: list[tuple[str, Any, list[str]]] = [
    ("string", "Close T-1", ["invalid AgentWorkflow input", "(top level)", "valid dictionary", "(got 'Close T-1')"]),
    ("array", ["support", "Close T-1"], ["invalid AgentWorkflow input", "(top level)"]),
    ("number", 7, ["invalid AgentWorkflow input", "(top level)"]),
    ("null", None, ["invalid AgentWorkflow input", "(top level)"]),
    ("wrong types", {"agent": "support", "input": ["Close", "T-1"], "context": "T-1"}, ["input: ", "context: "]),
    ("requester too long", {"agent": "support", "input": "x", "requester": "r" * 201}, ["requester: ", "200"]),
    ("empty agent", {"agent": "", "input": "x"}, ["agent: ", "at least 1"]),
    (
        "input too long",
        {"agent": "support", "input": "x" * (MAX_INPUT + 1)},
        ["input: ", f"at most {MAX_INPUT} characters", "(got 'xxxxx", "...)"],
    ),
]


@pytest.mark.parametrize(("value", "words"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
async def test_malformed_input_fails_with_invalid_input_error(
    client: Client, tmp_path: Path, value: Any, words: list[str]
) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            value,
            id=workflow_id("bad-input"),
            task_queue=project.settings.task_queue,
        )
        cause = await failed_cleanly(handle)
    assert cause.type == "InvalidInputError"
    for word in words:
        assert word in cause.message, cause.message
    assert len(cause.message) < 1_000, "the error names the problem without echoing a huge value"


async def test_cli_raw_json_inputs_fail_with_typed_errors(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # (raw --input as another service would send it, expected failure type, words in the message)
    cases = [
        ('"Close T-1"', "InvalidInputError", ["(top level)"]),
        ("[1, 2]", "InvalidInputError", ["(top level)"]),
        ("null", "InvalidInputError", ["(top level)"]),
        ('{"agent": "support", "input": "x", "priority": "high"}', "InvalidInputError", ["priority"]),
        ('{"agent": "support", "input": 42}', "InvalidInputError", ["input: "]),
        ('{"agent": "nobody", "input": "x"}', "UnknownAgentError", ["'nobody'", "support"]),
    ]
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handles = []
        for raw, _, _ in cases:
            run_id = workflow_id("cli-bad-input")
            await temporal_cli(
                temporal_env,
                "workflow",
                "start",
                "--type",
                "AgentWorkflow",
                "--task-queue",
                project.settings.task_queue,
                "--workflow-id",
                run_id,
                "--input",
                raw,
            )
            handles.append(client.get_workflow_handle(run_id))
        # No `--input` at all, and two of them: the workflow gets no argument, or two.
        odd = {
            "none": [],
            "two": ["--input", '{"agent": "support", "input": "x", "requester": "carol"}', "--input", '"y"'],
        }
        for count, inputs in odd.items():
            run_id = workflow_id(f"cli-{count}-inputs")
            await temporal_cli(
                temporal_env,
                "workflow",
                "start",
                "--type",
                "AgentWorkflow",
                "--task-queue",
                project.settings.task_queue,
                "--workflow-id",
                run_id,
                *inputs,
            )
            handles.append(client.get_workflow_handle(run_id))
        causes = [await failed_cleanly(handle) for handle in handles]
    for cause, (raw, kind, words) in zip(causes, cases, strict=False):
        assert cause.type == kind, (raw, cause.type, cause.message)
        assert all(word in cause.message for word in words), (raw, cause.message)
    for cause in causes[len(cases) :]:
        assert cause.type == "InvalidInputError" and "(top level)" in cause.message, cause.message
    assert not project.tickets_db.exists(), "no run got as far as starting a tool server"


async def test_cli_malformed_signals_are_refused_and_the_run_goes_on(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "cli-bad-signal")
        [pending] = await wait_pending(handle)
        raws = [
            "null",
            '"approve it"',
            '{"call_id": 5, "approver": ["alice"]}',
            json.dumps(decision(pending, "alice", comment="c" * 5_000)),
        ]
        for raw in raws:
            await temporal_cli(
                temporal_env, "workflow", "signal", "--workflow-id", handle.id, "--name", "approve", "--input", raw
            )
        # No payload, and two payloads of which the first alone would approve.
        approve_pending = json.dumps(decision(pending, "alice"))
        for inputs in ([], ["--input", approve_pending, "--input", approve_pending]):
            await temporal_cli(
                temporal_env, "workflow", "signal", "--workflow-id", handle.id, "--name", "approve", *inputs
            )

        async def refused() -> list[dict[str, Any]] | None:
            entries = [e for e in await audit_of(handle) if e["event"] == "refused"]
            return entries if len(entries) >= len(raws) + 2 else None

        entries = await wait_for(refused, what="every malformed signal audited as refused")
        assert all(e["reason"].startswith("invalid approve signal") for e in entries), entries
        assert await pending_of(handle) == [pending]
        assert count_writes(project.tickets_db) == 0

        review = decision(pending, "alice", decision="approve")
        for args in (["not", "an", "object"], [], [review, review]):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update("review", args=args, result_type=dict)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update("review", {**review, "decision": "maybe"}, result_type=dict)
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidInputError", cause
        assert "decision: Input should be 'approve' or 'reject'" in cause.message, cause.message
        assert await pending_of(handle) == [pending], "no refused review changed anything"

        await handle.signal("approve", decision(pending, "alice"))
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    assert [(r.decision, r.decided_by) for r in result.approvals] == [("approved", "alice")]
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_input_over_the_servers_payload_limit_is_refused_at_start(client: Client) -> None:
    # Past Airlock's own limit there is Temporal's: the server refuses the start itself (2 MB on the
    # dev server), so no run exists to fail and no worker ever sees the payload.
    run_id = workflow_id("huge-input")
    with pytest.raises(RPCError, match="size exceeds limit"):
        await client.start_workflow(
            "AgentWorkflow",
            {"agent": "support", "input": "x" * 3_000_000, "requester": "carol"},
            id=run_id,
            task_queue="airlock-unused",
        )
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(run_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
