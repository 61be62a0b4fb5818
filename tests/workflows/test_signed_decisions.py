"""Decisions whose identity is proven: with an approvers file only signed decisions count.

Real Temporal, the real tickets server over stdio, signatures made by `console.signing` and
verified inside the workflow. Each refused attempt changes nothing and is audited with its reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from console.signing import generate_key, key_id_of
from mcp_servers.tickets.store import TicketStore, count_writes
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.people import People, agent, audit_of, refusals, signed, start
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, wait_pending
from workflows.arguments import arguments_sha256
from workflows.identity import b64url, unb64url

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}


async def refused_review(handle: WorkflowHandle[Any, Any], payload: dict[str, Any]) -> str:
    """Send a `review` that must be refused; its reason."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update("review", {**payload, "decision": "approve"}, result_type=dict)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


async def test_only_a_signature_that_binds_this_decision_counts(
    client: Client,
    tmp_path: Path,
    people: People,
) -> None:
    project = make_project(
        tmp_path, script=SCRIPT, agents={"support": agent('approvers = ["alice", "bob"]')}, approvers_file=people.file
    )
    keys = people.keys
    async with airlock_worker(client, project):
        handle = await start(client, project, requester="bob")
        [pending] = await wait_pending(handle)
        wf = handle.id
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        attempts = {
            "unsigned decision": decision(pending, "alice"),
            "key of 'bob' signed for 'alice'": signed(pending, wf, "bob", keys["bob"], approver="alice"),
            "its call_id differs": signed(pending, wf, "alice", keys["alice"], call_id="call-support-9"),
            "its workflow_id differs": signed(pending, wf, "alice", keys["alice"], workflow_id="another-run"),
            "its decision differs": signed(pending, wf, "alice", keys["alice"], decision="reject"),
            "its arguments_sha256 differs": signed(pending, wf, "alice", keys["alice"], arguments_sha256="1" * 64),
            "expired": signed(pending, wf, "alice", keys["alice"], now=hour_ago),
            "lifetime beyond": signed(pending, wf, "alice", keys["alice"], lifetime=timedelta(days=30)),
            "unknown key": signed(pending, wf, "alice", generate_key()),
            "forbids self-approval": signed(pending, wf, "bob", keys["bob"]),
            "is not an approver": signed(pending, wf, "dave", keys["dave"]),
        }
        tampered = signed(pending, wf, "bob", keys["bob"], approver="alice")
        head, body, sig = tampered["signature"].split(".")
        claims = {**json.loads(unb64url(body)), "iss": "alice"}  # bob's signature, now claiming alice
        tampered["signature"] = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
        attempts["bad signature"] = tampered
        for payload in attempts.values():
            await handle.signal("approve", payload)
        reasons = await refusals(handle, len(attempts))
        # A signature by an unknown key is refused only after one look at the approvers file,
        # so it may come later than the others.
        for expected in attempts:
            assert sum(expected in reason for reason in reasons) == 1, (expected, reasons)
        for expected, payload in list(attempts.items())[:3]:
            assert expected in await refused_review(handle, payload)
        assert count_writes(project.tickets_db) == 0, "no refused decision may open the gate"

        good = signed(pending, wf, "alice", keys["alice"])
        recorded = await handle.execute_update("review", {**good, "decision": "approve"}, result_type=dict)
        result = await handle.result()
    assert recorded["identity"] == f"signed:alice/{key_id_of(keys['alice'])}"
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "alice", "ok")
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_a_quorum_of_signed_people_and_a_service_that_vouches(
    client: Client,
    tmp_path: Path,
    people: People,
) -> None:
    approval = 'approvers = ["alice", "bob", "group:leads"]\nrequired = 2'
    project = make_project(tmp_path, script=SCRIPT, agents={"support": agent(approval)}, approvers_file=people.file)
    keys = people.keys
    async with airlock_worker(client, project):
        handle = await start(client, project)
        [pending] = await wait_pending(handle)
        first = signed(pending, handle.id, "alice", keys["alice"])
        await handle.signal("approve", first)
        [waiting] = await wait_for(
            lambda: _pending_with(handle, lambda p: p["approved_by"] == ["alice"]), what="alice's approval to count"
        )
        assert waiting["approvals_needed"] == 1
        await handle.signal("approve", first)  # the same signature again
        await handle.signal("approve", signed(pending, handle.id, "inbox", keys["inbox"], approver="mallory"))
        reasons = await refusals(handle, 2)
        assert "already used" in reasons[0] and "may not assert 'mallory'" in reasons[1]
        assert count_writes(project.tickets_db) == 0, "one approval of two must not open the gate"
        await handle.signal("approve", signed(pending, handle.id, "inbox", keys["inbox"], approver="bob"))
        result = await handle.result()
        audit = await audit_of(handle)
    [record] = result.approvals
    assert (record.decision, record.approved_by) == ("approved", ["alice", "bob"])
    assert record.identity == f"signed:inbox/{key_id_of(keys['inbox'])}"
    approved = [(e["actor"], e["identity"]) for e in audit if e["event"] == "approved"]
    assert approved == [
        ("alice", f"signed:alice/{key_id_of(keys['alice'])}"),
        ("bob", f"signed:inbox/{key_id_of(keys['inbox'])}"),
    ]
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


async def _pending_with(handle: WorkflowHandle[Any, Any], test: Any) -> list[dict[str, Any]] | None:
    pending = await handle.query("pending_approvals", result_type=list)
    return pending if pending and test(pending[0]) else None


async def test_a_key_added_to_the_file_works_for_a_run_already_waiting(
    client: Client,
    tmp_path: Path,
    people: People,
) -> None:
    project = make_project(
        tmp_path,
        script={
            "support": [
                CLOSE_T1,
                {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2", "resolution": "fixed"}}},
                {"message": "Done."},
            ]
        },
        agents={"support": agent('approvers = ["alice"]')},
        approvers_file=people.file,
    )
    rotated = generate_key()
    async with airlock_worker(client, project):
        handle = await start(client, project)
        [first] = await wait_pending(handle)
        people.write(extra_alice_key=rotated)
        # By update: the validator lets an unknown key through once, the handler looks again.
        recorded = await handle.execute_update(
            "review", {**signed(first, handle.id, "alice", rotated), "decision": "approve"}, result_type=dict
        )
        assert recorded["identity"] == f"signed:alice/{key_id_of(rotated)}"
        [second] = await wait_for(
            lambda: _pending_with(handle, lambda p: p["call_id"] != first["call_id"]), what="the second call"
        )
        # By signal, with the old key, which is still listed.
        await handle.signal("approve", signed(second, handle.id, "alice", people.keys["alice"]))
        result = await handle.result()
    assert [r.identity for r in result.approvals] == [
        f"signed:alice/{key_id_of(rotated)}",
        f"signed:alice/{key_id_of(people.keys['alice'])}",
    ]
    assert count_writes(project.tickets_db, "close_ticket") == 2
    await assert_replays(handle)


async def test_an_approval_with_edits_runs_the_edited_call_and_the_model_hears_so(
    client: Client,
    tmp_path: Path,
    people: People,
) -> None:
    project = make_project(
        tmp_path, script=SCRIPT, agents={"support": agent('approvers = ["alice"]')}, approvers_file=people.file
    )
    edited = {"ticket_id": "T-1", "resolution": "duplicate"}
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        [pending] = await wait_pending(handle)
        # An edit signed as a plain approval does not bind the edit: refused.
        plain = signed(pending, handle.id, "alice", people.keys["alice"])
        assert "edited_sha256 differs" in await refused_review(handle, {**plain, "arguments": edited})
        bad = signed(pending, handle.id, "alice", people.keys["alice"], edited={"ticket_id": "T-1", "x": 1})
        assert "input schema" in await refused_review(handle, bad)
        await handle.execute_update(
            "review",
            {**signed(pending, handle.id, "alice", people.keys["alice"], edited=edited), "decision": "approve"},
            result_type=dict,
        )
        result = await handle.result()
        audit = await audit_of(handle)
    [record] = result.approvals
    assert record.arguments == edited and record.requested_sha256 == pending["arguments_sha256"]
    assert TicketStore.open(project.tickets_db).get("T-1")["resolution"] == "duplicate"
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [approval] = [e for e in audit if e["event"] == "approved"]
    assert approval["edited_from_sha256"] == pending["arguments_sha256"]
    assert approval["arguments_sha256"] == arguments_sha256(edited)
    told = spy.tool_outputs()[-1]
    assert "an approver edited this call" in told and '"duplicate"' in told
    await assert_replays(handle)
