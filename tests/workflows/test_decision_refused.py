"""A refused decision crosses the wire as its own failure type, `DecisionRefusedError`.

Refused by the update's validator (nothing enters history) and by its handler (after one look at
the approvers file for a key the run does not know: the failure is in history and replays). The
message keeps the `refused: ` prefix for one release; the console's `send_review` gives the reason
without it. Real Temporal, the tickets server over stdio, signatures made by `console.signing`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from console.decisions import send_review
from console.errors import DecisionNotRecordedError
from console.signing import generate_key, public_bytes, sign_decision
from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.errors import DecisionRefusedError
from workflows.identity import public_key_entry
from workflows.payloads import AgentRequest, AgentResult

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}
AGENT = (
    'name = "support"\ninstructions = "You resolve support tickets."\nmcp_servers = ["tickets"]\n'
    '[tools]\n"get_*" = "auto"\n\n[approval]\napprovers = ["alice"]\n'
)
WAIT = timedelta(seconds=30)


def signed(pending: dict[str, Any], workflow: str, key: Any) -> dict[str, Any]:
    """alice's approval of `pending`, signed by `key`."""
    token = sign_decision(
        key,
        signer="alice",
        approver="alice",
        namespace="default",
        workflow_id=workflow,
        run_id=pending["run_id"],
        call_id=pending["call_id"],
        decision="approve",
        arguments_sha256=pending["arguments_sha256"],
    )
    return {**decision(pending, "alice", signature=token), "decision": "approve"}


async def refusal(handle: WorkflowHandle[Any, Any], payload: dict[str, Any]) -> ApplicationError:
    """The failure a `review` that must be refused comes back with."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update("review", payload, result_type=dict)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def test_a_refused_review_is_a_decision_refused_error(client: Client, tmp_path: Path) -> None:
    alice = generate_key()
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(f"[people.alice]\nkeys = {json.dumps([public_key_entry(public_bytes(alice))])}\n")
    project = make_project(tmp_path, script=SCRIPT, agents={"support": AGENT}, approvers_file=approvers)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="carol"),
            id=workflow_id("refused-type"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)

        # A key the run does not know passes the validator once, so the handler refuses it.
        stranger = await refusal(handle, signed(pending, handle.id, generate_key()))
        # Unsigned: the validator refuses it before it enters history.
        unsigned = await refusal(handle, {**decision(pending, "alice"), "decision": "approve"})
        for cause, why in ((stranger, "unknown key"), (unsigned, "unsigned decision")):
            assert DecisionRefusedError.is_type_of(cause), (cause.type, cause.message)
            assert cause.message.startswith("refused: ") and why in cause.message, cause.message
            assert cause.non_retryable

        # The console reads the reason without the prefix.
        with pytest.raises(DecisionNotRecordedError) as told:
            await send_review(handle, {**decision(pending, "alice"), "decision": "approve"}, WAIT)
        assert str(told.value).startswith("unsigned decision"), str(told.value)
        assert count_writes(project.tickets_db) == 0, "no refused decision may open the gate"

        await handle.execute_update("review", signed(pending, handle.id, alice), result_type=dict)
        result = await handle.result()
    assert [(r.decision, r.decided_by) for r in result.approvals] == [("approved", "alice")]
    history = await handle.fetch_history()
    failed = [
        e.workflow_execution_update_completed_event_attributes.outcome.failure
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
        and e.workflow_execution_update_completed_event_attributes.outcome.HasField("failure")
    ]
    assert [f.application_failure_info.type for f in failed] == ["DecisionRefusedError"], failed
    assert_no_task_failures(history)
    await assert_replays(handle)
