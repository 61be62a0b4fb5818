"""The approval gate on its own: pure, so every rule is checked without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflows.arguments import arguments_sha256
from workflows.audit import MAX_REFUSALS_LISTED
from workflows.authority import Authority
from workflows.gate import ApprovalGate
from workflows.identity import AuthorityRefusedError, Verifier
from workflows.payloads import ApprovalConfig, ApprovalRecord, Approve, Directory, Principal, Reject, Review

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCHEMA = {
    "type": "object",
    "properties": {"ticket_id": {"type": "string"}, "resolution": {"enum": ["fixed", "duplicate"]}},
    "required": ["ticket_id"],
}
ARGS = {"ticket_id": "T-1", "resolution": "fixed"}


def gate(directory: Directory | None = None, requester: str | None = "carol", **config: Any) -> ApprovalGate:
    """A gate for agent `support` with the given `[approval]` settings."""
    approval = ApprovalConfig(**{"approvers": ["alice", "bob"], **config})
    return ApprovalGate(
        lambda _agent: approval,
        lambda _record: SCHEMA,
        Authority(Verifier(directory), workflow_id="wf-1", requester=requester),
    )


def ask(g: ApprovalGate, call_id: str = "c-1", arguments: dict[str, Any] | None = None) -> ApprovalRecord:
    """Gate one close_ticket call."""
    return g.request(
        call_id=call_id,
        agent="support",
        server="tickets",
        tool="close_ticket",
        arguments=dict(arguments or ARGS),
        now=NOW,
    )


def approve(record: ApprovalRecord, approver: str, **fields: Any) -> Approve:
    """An approval of `record` as it stands now."""
    return Approve(call_id=record.call_id, approver=approver, arguments_sha256=record.arguments_sha256, **fields)


def test_an_approval_opens_the_call_once_with_the_asked_arguments() -> None:
    g = gate()
    record = ask(g)
    g.decide(approve(record, "alice", comment="ok"), NOW)
    assert (record.decision, record.decided_by, record.identity, record.reason) == (
        "approved",
        "alice",
        "asserted",
        "ok",
    )
    assert g.release("c-1", server="tickets", tool="close_ticket", requested=ARGS) == ARGS
    with pytest.raises(AuthorityRefusedError, match="already ran"):
        g.release("c-1", server="tickets", tool="close_ticket", requested=ARGS)


@pytest.mark.parametrize(
    ("server", "tool", "requested", "why"),
    [
        ("evil", "close_ticket", ARGS, "the approval is for tickets.close_ticket"),
        ("tickets", "delete_ticket", ARGS, "the approval is for tickets.close_ticket"),
        ("tickets", "close_ticket", {"ticket_id": "T-2"}, "differ from the ones that were approved"),
    ],
)
def test_release_checks_server_tool_and_arguments(server: str, tool: str, requested: dict[str, Any], why: str) -> None:
    g = gate()
    record = ask(g)
    g.decide(approve(record, "alice"), NOW)
    with pytest.raises(AuthorityRefusedError, match=why):
        g.release("c-1", server=server, tool=tool, requested=requested)


def test_nothing_runs_without_an_approval() -> None:
    g = gate()
    ask(g)
    with pytest.raises(AuthorityRefusedError, match="not been approved"):
        g.release("c-1", server="tickets", tool="close_ticket", requested=ARGS)
    with pytest.raises(AuthorityRefusedError, match="not been approved"):
        g.release("never-gated", server="tickets", tool="close_ticket", requested=ARGS)


def test_a_reused_call_id_is_refused() -> None:
    g = gate()
    ask(g)
    with pytest.raises(AuthorityRefusedError, match="already used"):
        ask(g, arguments={"ticket_id": "T-9"})
    with pytest.raises(AuthorityRefusedError, match="1 to 200"):
        ask(g, call_id="")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"arguments_sha256": "0" * 64}, "wrong arguments_sha256"),
        ({"call_id": "c-9"}, "no approval is pending"),
        ({"approver": "mallory"}, "is not an approver"),
        ({"approver": "carol"}, "forbids self-approval"),
    ],
)
def test_a_decision_that_does_not_match_changes_nothing(change: dict[str, Any], why: str) -> None:
    g = gate(approvers=["alice", "bob", "carol"])
    record = ask(g)
    message = approve(record, "alice").model_copy(update=change)
    with pytest.raises(AuthorityRefusedError, match=why):
        g.decide(message, NOW)
    assert record.decision is None and record.approved_by == []
    assert [e.event for e in g.audit] == ["requested"]


def test_self_approval_only_when_allowed() -> None:
    g = gate(approvers=[], allow_self_approval=True)
    record = ask(g)
    g.decide(approve(record, "carol"), NOW)
    assert record.decision == "approved"


def test_quorum_needs_distinct_people_and_a_rejection_ends_it() -> None:
    g = gate(approvers=["alice", "bob", "dave"], required=2)
    record = ask(g)
    g.decide(approve(record, "alice"), NOW)
    assert (record.decision, record.approved_by) == (None, ["alice"])
    assert g.pending()[0].approvals_needed == 1
    with pytest.raises(AuthorityRefusedError, match="already approved"):
        g.decide(approve(record, "alice"), NOW)
    g.decide(approve(record, "bob"), NOW)
    assert (record.decision, record.approved_by) == ("approved", ["alice", "bob"])

    second = ask(g, "c-2")
    g.decide(approve(second, "alice"), NOW)
    g.decide(Reject(call_id="c-2", approver="dave", arguments_sha256=second.arguments_sha256, reason="no"), NOW)
    assert (second.decision, second.decided_by, second.reason) == ("rejected", "dave", "no")


def test_an_edit_resets_the_quorum_and_binds_the_new_hash() -> None:
    g = gate(required=2)
    record = ask(g)
    g.decide(approve(record, "bob"), NOW)
    asked = record.arguments_sha256
    edited = {"ticket_id": "T-1", "resolution": "duplicate"}
    g.decide(approve(record, "alice", arguments=edited), NOW)
    assert (record.arguments, record.approved_by, record.decision) == (edited, ["alice"], None)
    assert (record.arguments_sha256, record.requested_sha256) == (arguments_sha256(edited), asked)
    stale = Approve(call_id="c-1", approver="bob", arguments_sha256=asked)
    with pytest.raises(AuthorityRefusedError, match="wrong arguments_sha256"):
        g.decide(stale, NOW)
    g.decide(approve(record, "bob"), NOW)
    assert record.decision == "approved"
    # The model asked for ARGS; the call runs with what the approvers agreed on.
    assert g.release("c-1", server="tickets", tool="close_ticket", requested=ARGS) == edited
    approved = [e for e in g.audit if e.event == "approved"]
    assert [(e.actor, e.edited_from_sha256) for e in approved] == [("bob", None), ("alice", asked), ("bob", None)]


def test_an_edit_must_fit_the_tool_schema() -> None:
    g = gate()
    record = ask(g)
    with pytest.raises(AuthorityRefusedError, match="input schema"):
        g.decide(approve(record, "alice", arguments={"ticket_id": "T-1", "resolution": "burnt"}), NOW)
    with pytest.raises(AuthorityRefusedError, match="input schema"):
        g.decide(approve(record, "alice", arguments={"ticket_id": "T-1", "extra": 1}), NOW)
    assert record.arguments == ARGS


def test_escalation_lets_more_people_decide_after_a_while() -> None:
    g = gate(escalate_after_seconds=600, escalate_to=["dave"])
    record = ask(g)
    with pytest.raises(AuthorityRefusedError, match="is not an approver"):
        g.decide(approve(record, "dave"), NOW + timedelta(minutes=9))
    assert g.next_wakeup(NOW) == NOW + timedelta(minutes=10)
    later = NOW + timedelta(minutes=10)
    assert g.escalate_due(later) == [record]
    assert g.escalate_due(later) == [], "a call escalates once"
    g.decide(approve(record, "dave"), later)
    assert (record.decision, record.decided_by) == ("approved", "dave")


def test_groups_need_a_directory() -> None:
    directory = Directory(
        people={"erin": Principal(keys=["ed25519:" + "A" * 43 + "="])}, groups={"oncall": ["erin", "frank"]}
    )
    assert Verifier(directory).members(["group:oncall", "alice"]) == {"erin", "frank", "alice"}
    assert Verifier(None).members(["group:oncall"]) == set()


def test_refusals_are_listed_up_to_a_bound_then_counted() -> None:
    g = gate()
    ask(g)
    for index in range(MAX_REFUSALS_LISTED + 50):
        g.refuse("x" * 10_000, actor="m" * 10_000, reason="r" * 10_000, now=NOW + timedelta(seconds=index))
    refused = [e for e in g.audit if e.event == "refused"]
    assert len(refused) == MAX_REFUSALS_LISTED
    assert all(len(e.call_id) <= 201 and len(e.actor or "") <= 201 and len(e.reason or "") <= 301 for e in refused)
    [summary] = [e for e in g.audit if e.event == "refusals_omitted"]
    assert summary.count == 50 and g.audit[-1] is summary
    # Later events do not start a second summary: the one entry keeps counting.
    g.time_out(g.records[0], NOW)
    g.refuse("late", actor="m", reason="r", now=NOW)
    assert [e.count for e in g.audit if e.event == "refusals_omitted"] == [51]


def test_review_kinds() -> None:
    g = gate()
    record = ask(g)
    g.decide(
        Review(
            call_id="c-1", approver="bob", arguments_sha256=record.arguments_sha256, decision="reject", reason="not yet"
        ),
        NOW,
    )
    assert (record.decision, record.reason) == ("rejected", "not yet")
    with pytest.raises(AuthorityRefusedError, match="already decided"):
        g.decide(approve(record, "alice"), NOW)
