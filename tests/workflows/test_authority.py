"""Who may decide a call: one rule for the gate, the input desk, `call_details` and the inbox (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.inbox.runs import may_decide
from workflows.audit import AuditLog
from workflows.authority import Authority
from workflows.gate import ApprovalGate
from workflows.identity import AuthorityRefusedError, Verifier
from workflows.input_requests import InputDesk
from workflows.payloads import (
    Answer,
    ApprovalConfig,
    ApprovalRecord,
    Approve,
    CallDetails,
    Directory,
    InputQuestion,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
ARGS = {"ticket_id": "T-1"}
SCHEMA = {"type": "object", "properties": {"ticket_id": {"type": "string"}}}
QUESTION = InputQuestion(message="Which queue?", question_sha256="a" * 64)
PEOPLE = ["alice", "ALICE", "bob", "Bob@Example.com", "carol", "Carol", "dave"]
CONFIGS = {
    "approvers, no self-approval": ApprovalConfig(approvers=["alice", "carol"]),
    "approvers, self-approval": ApprovalConfig(approvers=["alice", "carol"], allow_self_approval=True),
    "anyone but the requester": ApprovalConfig(),
    "anyone": ApprovalConfig(allow_self_approval=True),
    "escalation": ApprovalConfig(approvers=["alice"], escalate_after_seconds=60, escalate_to=["bob@example.com"]),
}


class Run:
    """A run's one authority and audit log, with the gate and the input desk that share them."""

    def __init__(self, config: ApprovalConfig, directory: Directory | None = None) -> None:
        self.config = config
        self.authority = Authority(Verifier(directory), workflow_id="wf-1", requester="carol")
        self.audit = AuditLog()
        self.gate = ApprovalGate(lambda _agent: config, lambda _record: SCHEMA, self.authority, self.audit)
        self.desk = InputDesk(self.authority, self.audit, config_of=lambda _agent: config)

    def call(self) -> ApprovalRecord:
        """Gate c-1, and open a question on the same call."""
        record = self.gate.request(
            call_id="c-1", agent="support", server="tickets", tool="close_ticket", arguments=ARGS, now=NOW
        )
        self.desk.open(
            call_id="c-1",
            agent="support",
            server="tickets",
            tool="close_ticket",
            arguments=ARGS,
            question=QUESTION,
            now=NOW,
        )
        return record

    def shown(self, record: ApprovalRecord, now: datetime) -> CallDetails:
        """What `call_details` answers for the call at `now`."""
        return CallDetails(
            pending=self.gate.as_pending(record),
            description="",
            input_schema=SCHEMA,
            deciders=self.authority.deciders(record, self.config, now).listed(),
            allow_self_approval=self.config.allow_self_approval,
        )


def gate_allows(run: Run, record: ApprovalRecord, person: str, now: datetime) -> bool:
    """Whether the gate would count `person`'s approval."""
    try:
        run.gate.judge(Approve(call_id="c-1", approver=person, arguments_sha256=record.arguments_sha256), now)
    except AuthorityRefusedError:
        return False
    return True


def desk_allows(run: Run, person: str, now: datetime) -> bool:
    """Whether the input desk would count `person`'s answer."""
    answer = Answer(call_id="c-1", approver=person, question_sha256=QUESTION.question_sha256, action="decline")
    try:
        run.desk.judge(answer, now)
    except AuthorityRefusedError:
        return False
    return True


@pytest.mark.parametrize("name", CONFIGS)
def test_the_gate_the_input_desk_and_the_inbox_ask_one_rule(name: str) -> None:
    run = Run(CONFIGS[name])
    record = run.call()
    for now in (NOW, LATER):
        shown = run.shown(record, now)
        for person in PEOPLE:
            by_gate = gate_allows(run, record, person, now)
            assert desk_allows(run, person, now) == by_gate, (name, person, now)
            assert may_decide(person, shown) == by_gate, (name, person, now)


def test_who_may_decide_follows_groups_escalation_and_self_approval() -> None:
    team = Directory(groups={"team": ["Bob@Example.com", "carol"]})
    config = ApprovalConfig(approvers=["alice"], escalate_after_seconds=60, escalate_to=["group:team"])
    run = Run(config, team)
    record = run.call()
    before, after = run.authority.deciders(record, config, NOW), run.authority.deciders(record, config, LATER)
    # The requester (carol) is in the group, and never decides: the agent forbids self-approval.
    assert (before.listed(), after.listed()) == (["alice"], ["alice", "bob@example.com"])
    assert not after.allows("Carol") and after.allows("BOB@example.com") and not before.allows("bob@example.com")
    assert (
        after.refusal("carol", "support")
        == "'carol' requested this run (claimed) and agent 'support' forbids self-approval"
    )
    assert before.refusal("bob@example.com", "support") == "'bob@example.com' is not an approver of agent 'support'"
    with pytest.raises(AuthorityRefusedError, match="not an approver"):
        run.authority.check(record, config, "dave", LATER)


def test_the_gate_and_the_input_desk_write_one_audit_log() -> None:
    run = Run(CONFIGS["anyone"])
    run.call()
    run.gate.refuse("c-1", actor="mallory", reason="no", now=NOW)
    assert [entry.event for entry in run.audit] == ["requested", "input_requested", "refused"]
    assert run.gate.audit is run.audit
