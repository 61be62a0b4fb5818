"""The approval gate end to end: signals, the `review` update, the `temporal` CLI,
refusals, timeouts and the audit trail — real Temporal, real MCP over stdio, scripted model."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.approvals import CLOSE_SCRIPT, CLOSE_T1, audit_of, start, wait_refused
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays, events_with, history_text
from tests.support.project import TICKETS_STDIO, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, pending_of, temporal_cli, wait_pending
from workflows.arguments import arguments_sha256

CLOSE_T2 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2"}}}
# Two gated writes in a row keep the run open after the first decision, so late messages about
# the first call still reach a running workflow.
TWO_WRITES_SCRIPT = {"support": [CLOSE_T1, CLOSE_T2, {"message": "Done."}]}

# Spelled out here rather than imported: the search attribute's name is API.
AIRLOCK_STATE = SearchAttributeKey.for_keyword("AirlockState")


def support_agent(approval: str, tools: str = '"get_*" = "auto"\n"search_*" = "auto"') -> str:
    """The support agent with its own `[approval]` table (and `[tools]` rules, unless empty)."""
    rules = f"[tools]\n{tools}\n" if tools else ""
    return (
        'name = "support"\ninstructions = "You resolve support tickets."\nmcp_servers = ["tickets"]\n'
        f"{rules}\n[approval]\n{approval}\n"
    )


def at(value: str) -> datetime:
    """A timestamp from query/result JSON."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- 1. reject ---------------------------------------------------------------------------------


async def test_reject_writes_nothing_and_the_model_hears_the_reason(client: Client, tmp_path: Path) -> None:
    reason = "T-1 is still broken for EU customers"
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project, "reject")
        [pending] = await wait_pending(handle)
        await handle.signal("reject", decision(pending, "bob", reason=reason))
        result = await handle.result()
        # Queries of a closed run are answered by a worker, so ask before it stops.
        audit = await audit_of(handle)
    assert count_writes(project.tickets_db) == 0
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.reason, record.outcome) == ("rejected", "bob", reason, None)
    assert result.output == "Done."
    # The turn after the rejection carries the rejection, with its reason, as the call's output.
    last_turn = spy.calls[-1].input
    outputs = [
        item
        for item in last_turn
        if item.get("type") == "function_call_output" and item.get("call_id") == pending["call_id"]
    ]
    assert len(outputs) == 1, last_turn
    assert reason in json.dumps(outputs[0]["output"])
    assert "not executed" in json.dumps(outputs[0]["output"])
    events = [(e["event"], e["actor"], e["reason"]) for e in audit]
    assert events == [("requested", None, None), ("rejected", "bob", reason)]
    await assert_replays(handle)


# --- 2. temporal CLI ---------------------------------------------------------------------------


def json_documents(text: str) -> list[Any]:
    """CLI JSON output: one array, or one object per line."""
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return value if isinstance(value, list) else [value]


async def listed(env: WorkflowEnvironment, query: str, wanted: str) -> bool:
    """Whether `temporal workflow list --query` reports the workflow id `wanted`."""
    out = await temporal_cli(env, "workflow", "list", "--query", query, "-o", "json")
    return wanted in {doc["execution"]["workflowId"] for doc in json_documents(out)}


async def test_approve_with_the_temporal_cli(client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "cli")
        [pending] = await wait_pending(handle)
        waiting = 'AirlockState="awaiting_approval"'
        await wait_for(lambda: listed(temporal_env, waiting, handle.id), what="the run listed as awaiting_approval")
        payload = json.dumps(decision(pending, "alice"))
        await temporal_cli(
            temporal_env, "workflow", "signal", "--workflow-id", handle.id, "--name", "approve", "--input", payload
        )
        result = await handle.result()
        await wait_for(
            lambda: listed(temporal_env, 'AirlockState="completed"', handle.id), what="the run listed as completed"
        )
        assert not await listed(temporal_env, waiting, handle.id)
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "alice", "ok")
    await assert_replays(handle)


# --- 3. review update --------------------------------------------------------------------------


async def test_review_update_returns_the_recorded_decision(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "review")
        [pending] = await wait_pending(handle)
        recorded = await handle.execute_update(
            "review",
            {**decision(pending, "bob"), "decision": "approve", "reason": "verified fix"},
            result_type=dict,
        )
        result = await handle.result()
    assert recorded["call_id"] == pending["call_id"]
    assert (recorded["decision"], recorded["decided_by"], recorded["reason"]) == ("approved", "bob", "verified fix")
    assert recorded["arguments_sha256"] == pending["arguments_sha256"]
    assert recorded["decided_at"] is not None
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "bob", "ok")
    history = await handle.fetch_history()
    assert len(events_with(history, "workflow_execution_update_accepted_event_attributes")) == 1
    await assert_replays(handle)


# --- 4. refusals -------------------------------------------------------------------------------

NO_SELF_APPROVAL = support_agent('approvers = ["alice", "bob"]\nallow_self_approval = false')


async def test_refused_signals_change_nothing_and_are_audited(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=TWO_WRITES_SCRIPT, agents={"support": NO_SELF_APPROVAL})
    async with airlock_worker(client, project):
        handle = await start(client, project, "refuse-signal", requester="alice")
        [first] = await wait_pending(handle)
        attempts = [
            (
                {"call_id": "call-nobody-7", "arguments_sha256": "0" * 64, "approver": "bob"},
                "bob",
                "no approval is pending",
            ),
            (decision(first, "mallory"), "mallory", "not an approver"),
            (decision(first, "alice"), "alice", "self-approval"),
        ]
        for payload, _, _ in attempts:
            await handle.signal("approve", payload)
        refused = await wait_refused(handle, 3)
        assert [(e["actor"], e["call_id"]) for e in refused] == [(a, p["call_id"]) for p, a, _ in attempts]
        for entry, (_, _, why) in zip(refused, attempts, strict=True):
            assert why in entry["reason"]
        assert [p["call_id"] for p in await pending_of(handle)] == [first["call_id"]]
        assert count_writes(project.tickets_db) == 0, "refused approvals must not open the gate"

        await handle.signal("approve", decision(first, "bob"))
        [second] = await wait_for(
            lambda: _pending_other_than(handle, first["call_id"]), what="the second write to wait"
        )
        assert count_writes(project.tickets_db, "close_ticket") == 1
        await handle.signal("approve", decision(first, "bob"))
        duplicate = (await wait_refused(handle, 4))[-1]
        assert (duplicate["actor"], duplicate["call_id"]) == ("bob", first["call_id"])
        assert "already decided" in duplicate["reason"]
        assert count_writes(project.tickets_db) == 1, "a duplicate approval must not write again"

        await handle.signal("approve", decision(second, "bob"))
        result = await handle.result()
    assert count_writes(project.tickets_db, "close_ticket") == 2
    assert [(r.decision, r.decided_by, r.outcome) for r in result.approvals] == [("approved", "bob", "ok")] * 2
    await assert_replays(handle)


async def _pending_other_than(handle: WorkflowHandle[Any, Any], call_id: str) -> list[dict[str, Any]]:
    return [p for p in await pending_of(handle) if p["call_id"] != call_id]


async def test_refused_reviews_fail_and_leave_no_trace(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=TWO_WRITES_SCRIPT, agents={"support": NO_SELF_APPROVAL})
    async with airlock_worker(client, project):
        handle = await start(client, project, "refuse-review", requester="alice")
        [first] = await wait_pending(handle)

        async def refused_review(call_id: str, approver: str, why: str) -> None:
            with pytest.raises(WorkflowUpdateFailedError) as failure:
                await handle.execute_update(
                    "review",
                    {
                        "call_id": call_id,
                        "arguments_sha256": first["arguments_sha256"],
                        "approver": approver,
                        "decision": "approve",
                    },
                    result_type=dict,
                )
            cause = failure.value.cause
            assert isinstance(cause, ApplicationError)
            assert why in cause.message, cause.message

        await refused_review("call-nobody-7", "bob", "no approval is pending")
        await refused_review(first["call_id"], "mallory", "not an approver")
        await refused_review(first["call_id"], "alice", "self-approval")
        assert [p["call_id"] for p in await pending_of(handle)] == [first["call_id"]]
        assert count_writes(project.tickets_db) == 0

        await handle.execute_update("review", decision(first, "bob", decision="approve"), result_type=dict)
        [second] = await wait_for(
            lambda: _pending_other_than(handle, first["call_id"]), what="the second write to wait"
        )
        await refused_review(first["call_id"], "bob", "already decided")
        assert count_writes(project.tickets_db) == 1

        await handle.execute_update("review", decision(second, "bob", decision="approve"), result_type=dict)
        result = await handle.result()
    assert count_writes(project.tickets_db, "close_ticket") == 2
    assert [r.decided_by for r in result.approvals] == ["bob", "bob"]
    history = await handle.fetch_history()
    accepted = events_with(history, "workflow_execution_update_accepted_event_attributes")
    assert len(accepted) == 2, "only the two valid reviews enter history"
    # Payloads are base64 in the raw history; `history_text` decodes them so this can fail.
    recorded = await history_text(handle)
    assert "mallory" not in recorded and "call-nobody-7" not in recorded
    assert_no_task_failures(history)
    await assert_replays(handle)


# --- 5. malformed signal -----------------------------------------------------------------------


async def test_malformed_signal_changes_nothing(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "malformed")
        [pending] = await wait_pending(handle)
        await handle.signal("approve", {"call": 1})
        await handle.signal("reject", decision(pending, "bob", colour="red"))
        refused = await wait_refused(handle, 2)
        assert [e["reason"].split(":")[0] for e in refused] == ["invalid approve signal", "invalid reject signal"]
        assert [e["actor"] for e in refused] == ["?", "bob"]
        assert await pending_of(handle) == [pending]
        status = await handle.query("status", result_type=dict)
        assert status["state"] == "awaiting_approval"
        assert count_writes(project.tickets_db) == 0
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert [(r.decision, r.decided_by) for r in result.approvals] == [("approved", "alice")]
    history = await handle.fetch_history()
    assert_no_task_failures(history)
    await assert_replays(handle)


@pytest.mark.parametrize(
    "payload", ["call-support-0", ["call-support-0", "alice"], 7], ids=["string", "array", "number"]
)
async def test_non_object_signal_payload_is_audited_as_refused(client: Client, tmp_path: Path, payload: object) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "not-object")
        [pending] = await wait_pending(handle)
        await handle.signal("approve", payload)
        # Signals are handled in the order they arrive: once this marker is audited, the
        # payload above has been handled too, so no waiting on an absence is needed.
        await handle.signal("approve", {"call_id": "marker", "approver": "alice"})
        refused = await wait_for(lambda: _refused_for(handle, "marker"), what="the marker refusal")
        assert await pending_of(handle) == [pending]
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert [e["call_id"] for e in refused] == ["", "marker"], f"the {payload!r} payload left no audit entry"
    assert refused[0]["reason"].startswith("invalid approve signal")
    assert [(r.decision, r.decided_by) for r in result.approvals] == [("approved", "alice")]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def _refused_for(handle: WorkflowHandle[Any, Any], marker: str) -> list[dict[str, Any]] | None:
    refused = [e for e in await audit_of(handle) if e["event"] == "refused"]
    return refused if any(e["call_id"] == marker for e in refused) else None


# --- 6. timeouts -------------------------------------------------------------------------------


async def test_timeout_rejects_when_on_timeout_is_reject(
    client: Client, time_skipping_client: Client, tmp_path: Path
) -> None:
    # An hour of waiting in virtual time: the run skips it once nothing else is in flight.
    agent = support_agent('approvers = ["alice"]\ntimeout = "1h"\non_timeout = "reject"')
    project = make_project(tmp_path, script=CLOSE_SCRIPT, agents={"support": agent})
    async with airlock_worker(client, project):
        handle = await start(time_skipping_client, project, "timeout-reject")
        result = await asyncio.wait_for(handle.result(), 20)
        audit = await audit_of(handle)
    assert count_writes(project.tickets_db) == 0
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("timed_out", None, None)
    assert record.decided_at is not None and record.deadline is not None
    assert record.decided_at >= record.deadline
    assert [e["event"] for e in audit] == ["requested", "timed_out"]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_timeout_fails_the_run_when_on_timeout_is_fail(
    client: Client, time_skipping_client: Client, tmp_path: Path
) -> None:
    agent = support_agent('approvers = ["alice"]\ntimeout = "1h"\non_timeout = "fail"')
    project = make_project(tmp_path, script=CLOSE_SCRIPT, agents={"support": agent})
    async with airlock_worker(client, project):
        handle = await start(time_skipping_client, project, "timeout-fail")
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 20)
        status = await handle.query("status", result_type=dict)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ApprovalTimedOutError"
    assert "close_ticket" in cause.message
    assert count_writes(project.tickets_db) == 0
    assert (status["state"], status["pending"]) == ("failed", 0)
    # Describe reads the run's own record, so unlike a visibility list it is current at once.
    listed_as = (await handle.describe()).typed_search_attributes.get(AIRLOCK_STATE)
    assert listed_as != "awaiting_approval", "a failed run must not stay listed as waiting for approval"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


# --- 7. a read and a write in one turn ---------------------------------------------------------


async def test_read_runs_while_write_in_same_turn_waits(client: Client, tmp_path: Path) -> None:
    script = {
        "support": [
            {
                "tool_calls": [
                    {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}},
                    {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}},
                ]
            },
            {"message": "Read and closed T-1."},
        ]
    }
    project = make_project(tmp_path, script=script)
    async with airlock_worker(client, project):
        handle = await start(client, project, "mixed")
        [pending] = await wait_pending(handle)
        assert (pending["tool"], pending["call_id"]) == ("close_ticket", "call-support-0-1")
        status = await handle.query("status", result_type=dict)
        assert status["state"] == "awaiting_approval"
        assert status["tool_calls"] == 1, f"the read runs without waiting: {status}"
        assert status["pending"] == 1
        assert count_writes(project.tickets_db) == 0
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert result.output == "Read and closed T-1."
    assert result.tool_calls == 2, "the read is not run again when the run resumes"
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert [(r.call_id, r.decision, r.outcome) for r in result.approvals] == [("call-support-0-1", "approved", "ok")]
    await assert_replays(handle)


# --- 8. untrusted servers ----------------------------------------------------------------------


async def test_untrusted_server_read_only_hint_does_not_open_the_gate(client: Client, tmp_path: Path) -> None:
    servers = TICKETS_STDIO.replace('trust = "trusted"', 'trust = "untrusted"')
    script = {
        "support": [
            {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
            {"message": "T-1 is about the login page."},
        ]
    }
    agent = support_agent('approvers = ["alice"]', tools="")
    project = make_project(tmp_path, script=script, servers=servers, agents={"support": agent})
    async with airlock_worker(client, project):
        handle = await start(client, project, "untrusted", text="What is T-1 about?")
        [pending] = await wait_pending(handle)
        assert (pending["server"], pending["tool"]) == ("tickets", "get_ticket")
        status = await handle.query("status", result_type=dict)
        assert (status["state"], status["tool_calls"]) == ("awaiting_approval", 0)
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert result.output == "T-1 is about the login page."
    assert [(r.tool, r.decision, r.outcome) for r in result.approvals] == [("get_ticket", "approved", "ok")]
    assert count_writes(project.tickets_db) == 0
    await assert_replays(handle)


# --- 9. pending approval fields ----------------------------------------------------------------


async def test_pending_approval_fields(client: Client, tmp_path: Path) -> None:
    arguments = {"ticket_id": "T-2", "resolution": "duplicate"}
    script = {"support": [{"tool_call": {"name": "close_ticket", "arguments": arguments}}, {"message": "Done."}]}
    agent = support_agent('approvers = ["alice"]\ntimeout = "2h"')
    project = make_project(tmp_path, script=script, agents={"support": agent})
    async with airlock_worker(client, project):
        before = datetime.now(UTC)
        handle = await start(client, project, "fields")
        [pending] = await wait_pending(handle)
        after = datetime.now(UTC)
        assert set(pending) == {
            "call_id",
            "agent",
            "server",
            "tool",
            "arguments",
            "arguments_sha256",
            "requested_at",
            "deadline",
            "approvals_needed",
            "approved_by",
            "requester",
            "requester_proof",
            "run_id",
        }
        assert (pending["approvals_needed"], pending["approved_by"], pending["requester"]) == (1, [], "carol")
        assert pending["requester_proof"] == "claimed"
        assert (pending["call_id"], pending["agent"], pending["server"], pending["tool"]) == (
            "call-support-0",
            "support",
            "tickets",
            "close_ticket",
        )
        assert pending["arguments"] == arguments
        assert pending["arguments_sha256"] == arguments_sha256(arguments)
        requested = at(pending["requested_at"])
        assert before - timedelta(seconds=5) <= requested <= after + timedelta(seconds=5)
        assert at(pending["deadline"]) - requested == timedelta(hours=2)
        await handle.signal("approve", decision(pending, "alice"))
        await handle.result()
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


# --- 10. result and audit trail ----------------------------------------------------------------


async def test_result_and_audit_record_request_decision_outcome_in_order(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "audit")
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice", comment="ok by me"))
        result = await handle.result()
        audit = await audit_of(handle)
    [record] = result.approvals
    assert (record.call_id, record.tool, record.server, record.agent) == (
        pending["call_id"],
        "close_ticket",
        "tickets",
        "support",
    )
    assert (record.decision, record.decided_by, record.reason, record.outcome) == (
        "approved",
        "alice",
        "ok by me",
        "ok",
    )
    assert record.decided_at is not None and record.requested_at <= record.decided_at
    assert [(e["event"], e["actor"], e["outcome"]) for e in audit] == [
        ("requested", None, None),
        ("approved", "alice", None),
        ("outcome", None, "ok"),
    ]
    assert all(e["call_id"] == pending["call_id"] and e["tool"] == "close_ticket" for e in audit)
    assert all(e["arguments_sha256"] == pending["arguments_sha256"] for e in audit)
    times = [at(e["at"]) for e in audit]
    assert times == sorted(times)
    assert times[0] == record.requested_at and times[1] == record.decided_at
    await assert_replays(handle)
