"""The approval gate: gated calls, and the one place decisions on them are judged and recorded.

Pure and deterministic: the workflow passes in `workflow.now()`, so the gate can be unit-tested
and carried across continue-as-new as plain data. A decision counts only for the call it names,
the arguments hash its sender saw, an identity the run's authority proves, and a person the
agent's `[approval]` table allows (`workflows/authority.py`); anything else changes nothing and
is audited as refused, in the run's one audit log (`workflows/audit.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from workflows.arguments import arguments_sha256, schema_errors
from workflows.audit import AuditLog
from workflows.authority import Authority, escalation_at
from workflows.decoding import cut
from workflows.identity import AuthorityRefusedError, Identity, canonical_name
from workflows.payloads import (
    ApprovalConfig,
    ApprovalRecord,
    Approve,
    AuditEntry,
    AuditEvent,
    Decision,
    Outcome,
    PendingApproval,
    Reject,
    Review,
    Ruling,
)

Kind = Literal["approve", "reject"]


@dataclass(frozen=True)
class Verdict:
    """A decision that may be applied: the call, who decided, and an edit if there is one."""

    record: ApprovalRecord
    kind: Kind
    identity: Identity
    reason: str
    edited: dict[str, Any] | None = None
    # The signed decision itself: kept with the call so the worker can check it where the call runs.
    signature: str | None = None


def _people(names: list[str]) -> set[str]:
    """The distinct people among recorded names (a record from before names were canonical too)."""
    return {canonical_name(name) for name in names}


def kind_of(message: Decision) -> Kind:
    """Whether a decision approves or rejects."""
    if isinstance(message, Review):
        return message.decision
    return "approve" if isinstance(message, Approve) else "reject"


def reason_of(message: Decision) -> str:
    """The comment of an approval or the reason of a rejection."""
    if isinstance(message, Approve):
        return message.comment
    return message.reason if isinstance(message, Reject | Review) else ""


def edit_of(message: Decision) -> dict[str, Any] | None:
    """The arguments an approval replaces the call's with, if any."""
    return message.arguments if isinstance(message, Approve | Review) else None


class ApprovalGate:
    """Every gated call of one run, keyed by the model's call id."""

    def __init__(
        self,
        config_of: Callable[[str], ApprovalConfig],
        schema_of: Callable[[ApprovalRecord], dict[str, Any]],
        authority: Authority,
        audit: AuditLog | None = None,
        *,
        records: list[ApprovalRecord] | None = None,
    ) -> None:
        self._config_of = config_of
        self._schema_of = schema_of
        # Shared with the input desk: one verifier, one set of used signatures, one audit log.
        self.authority = authority
        self.audit = audit if audit is not None else AuditLog()
        self._records = {record.call_id: record for record in records or []}
        # Calls whose execution has begun in this history; a reused call id never runs twice.
        self._started: set[str] = {r.call_id for r in self._records.values() if r.outcome is not None}
        # What the Cedar policies ruled on each call (the `policy_rule` step's recorded result), for
        # `request`, in the same workflow task (workflow memory: the record keeps what counts).
        self.rulings: dict[str, Ruling] = {}

    @property
    def records(self) -> list[ApprovalRecord]:
        """Every gated call so far, in the order it was requested."""
        return list(self._records.values())

    def get(self, call_id: str) -> ApprovalRecord | None:
        """The gated call with this id, decided or not."""
        return self._records.get(call_id)

    # --- requests --------------------------------------------------------------------------------

    def request(
        self,
        *,
        call_id: str,
        agent: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        now: datetime,
    ) -> ApprovalRecord:
        """Open an approval for one call; a call id that is empty, too long or used before is refused."""
        if not call_id or len(call_id) > 200:
            raise AuthorityRefusedError("the call id must be 1 to 200 characters")
        if call_id in self._records:
            raise AuthorityRefusedError(f"call id {cut(call_id)!r} was already used in this run")
        config = self._config_of(agent)
        ruling = self.rulings.get(call_id)
        record = ApprovalRecord(
            call_id=call_id,
            agent=agent,
            server=server,
            tool=tool,
            arguments=arguments,
            arguments_sha256=arguments_sha256(arguments),
            requested_at=now,
            deadline=now + timedelta(seconds=config.timeout_seconds),
            approvals_needed=(ruling.approvals if ruling is not None and ruling.approvals else config.required),
            approvers=ruling.approvers if ruling is not None else None,
            rule=ruling.rule if ruling is not None else None,
        )
        self._records[call_id] = record
        self._audit(record, "requested", now, requester=self.requester, rule=record.rule)
        return record

    def deny(
        self,
        call_id: str,
        *,
        agent: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        ruling: Ruling,
        now: datetime,
    ) -> None:
        """Note a call a policy denied, naming the rule (audited as refused, bounded as refusals are)."""
        why = f": {ruling.reason}" if ruling.reason else ""
        before = len(self.audit.entries)
        self.audit.refused(call_id, None, actor="policy", reason=f"denied by policy {ruling.rule}{why}", now=now)
        if len(self.audit.entries) > before and self.audit.entries[-1].event == "refused":
            entry = self.audit.entries[-1]
            entry.agent, entry.server, entry.tool, entry.rule = agent, server, tool, cut(ruling.rule or "", 300)
            entry.arguments_sha256 = arguments_sha256(arguments)

    def config_for(self, record: ApprovalRecord) -> ApprovalConfig:
        """The `[approval]` settings for `record`: its agent's, with a policy's approvers if one named them."""
        config = self._config_of(record.agent)
        if record.approvers is not None:
            return config.model_copy(update={"approvers": record.approvers})
        return config

    def pending(self) -> list[PendingApproval]:
        """The calls still waiting for a decision."""
        return [self.as_pending(r) for r in self._records.values() if r.decision is None]

    def as_pending(self, record: ApprovalRecord) -> PendingApproval:
        """The `pending_approvals` view of a gated call."""
        return PendingApproval(
            call_id=record.call_id,
            agent=record.agent,
            server=record.server,
            tool=record.tool,
            arguments=record.arguments,
            arguments_sha256=record.arguments_sha256,
            requested_at=record.requested_at,
            deadline=record.deadline,
            approvals_needed=max(record.approvals_needed - len(record.approved_by), 0),
            approved_by=list(record.approved_by),
            requester=self.requester,
            run_id=self.authority.run_id or None,
        )

    # --- decisions -------------------------------------------------------------------------------

    def judge(self, message: Decision, now: datetime) -> Verdict:
        """Check a decision without changing anything; `AuthorityRefusedError` says why it does not count."""
        record = self._records.get(message.call_id)
        if record is None:
            raise AuthorityRefusedError(f"no approval is pending for call id {cut(message.call_id)!r}")
        if record.decision is not None:
            raise AuthorityRefusedError(f"call {cut(message.call_id)!r} was already decided ({record.decision})")
        if message.arguments_sha256 != record.arguments_sha256:
            raise AuthorityRefusedError(
                "wrong arguments_sha256: it is not the hash of the call's arguments as they are now "
                "(read them again with pending_approvals)"
            )
        kind = kind_of(message)
        edited = edit_of(message) if kind == "approve" else None
        if edited is not None and arguments_sha256(edited) == record.arguments_sha256:
            edited = None  # the "edit" is the call as it stands: a plain approval
        if edited is not None:
            problems = schema_errors(self._schema_of(record), edited)
            if problems:
                raise AuthorityRefusedError(
                    "the edited arguments do not match the tool's input schema: " + "; ".join(problems)
                )
        identity = self.authority.identify(
            message.signature,
            call_id=record.call_id,
            decision=kind,
            approver=message.approver,
            arguments_sha256=record.arguments_sha256,
            edited_sha256=arguments_sha256(edited) if edited is not None else None,
            now=now,
        )
        self.authority.check(record, self.config_for(record), identity.person, now)
        if kind == "approve" and edited is None and identity.person in _people(record.approved_by):
            raise AuthorityRefusedError(f"{cut(identity.person)!r} already approved this call")
        return Verdict(
            record=record,
            kind=kind,
            identity=identity,
            reason=reason_of(message),
            edited=edited,
            signature=message.signature if identity.token_id is not None else None,
        )

    @property
    def requester(self) -> str | None:
        """Who requested the run (the self-approval rule compares with it)."""
        return self.authority.requester

    def decide(self, message: Decision, now: datetime) -> ApprovalRecord:
        """Judge a decision and, when it counts, record it: the one way any decision is applied."""
        return self.apply(self.judge(message, now), now)

    def apply(self, verdict: Verdict, now: datetime) -> ApprovalRecord:
        """Record a decision that `judge` allowed."""
        # Recorded in canonical form: `approved_by`, `decided_by` and the audit's `actor` name a
        # person one way, so the quorum counts people, not spellings.
        record, person = verdict.record, canonical_name(verdict.identity.person)
        self.authority.spend(verdict.identity)
        reason = verdict.reason or None
        if verdict.kind == "reject":
            self._close(record, "rejected", person, verdict.identity.label, reason, now)
            self._audit(record, "rejected", now, actor=person, reason=reason, identity=verdict.identity.label)
            return record
        before = record.arguments_sha256
        if verdict.edited is not None:
            # An edit is its author's approval of the edited call; approvals of the earlier
            # arguments no longer count, and the others decide on what is now shown.
            record.requested_sha256 = record.requested_sha256 or before
            record.arguments = verdict.edited
            record.arguments_sha256 = arguments_sha256(verdict.edited)
            record.approved_by = []
            record.proofs = []
        record.approved_by.append(person)
        if verdict.signature is not None:
            record.proofs.append(verdict.signature)
        self._audit(
            record,
            "approved",
            now,
            actor=person,
            reason=reason,
            identity=verdict.identity.label,
            edited_from=before if verdict.edited is not None else None,
        )
        if len(_people(record.approved_by)) >= record.approvals_needed:
            self._close(record, "approved", person, verdict.identity.label, reason, now)
        return record

    @staticmethod
    def _close(
        record: ApprovalRecord,
        decision: Literal["approved", "rejected", "timed_out"],
        person: str | None,
        identity: str | None,
        reason: str | None,
        now: datetime,
    ) -> None:
        record.decision = decision
        record.decided_by = person
        record.decided_at = now
        record.identity = identity
        record.reason = reason

    def refuse(self, call_id: str, *, actor: str, reason: str, now: datetime) -> None:
        """Note an attempt to decide that was refused; it changes nothing else."""
        self.audit.refused(call_id, self._records.get(call_id), actor=actor, reason=reason, now=now)

    # --- time ------------------------------------------------------------------------------------

    def escalation_at(self, record: ApprovalRecord) -> datetime | None:
        """When a call's escalation opens it to `escalate_to`, if its agent escalates."""
        return escalation_at(record, self._config_of(record.agent))

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The earliest deadline or escalation still ahead among pending calls."""
        times: list[datetime] = []
        for record in self._records.values():
            if record.decision is not None:
                continue
            if record.deadline is not None:
                times.append(record.deadline)
            at = self.escalation_at(record)
            if at is not None and at > now and record.escalated_at is None:
                times.append(at)
        return min(times) if times else None

    def escalate_due(self, now: datetime) -> list[ApprovalRecord]:
        """Mark and return pending calls whose escalation time has come."""
        due = []
        for record in self._records.values():
            at = self.escalation_at(record)
            if record.decision is None and record.escalated_at is None and at is not None and now >= at:
                record.escalated_at = now
                self._audit(
                    record,
                    "escalated",
                    now,
                    reason="may now also be decided by: " + ", ".join(self._config_of(record.agent).escalate_to),
                )
                due.append(record)
        return due

    def overdue(self, now: datetime) -> list[ApprovalRecord]:
        """Pending calls whose deadline has passed."""
        return [
            r for r in self._records.values() if r.decision is None and r.deadline is not None and r.deadline <= now
        ]

    def time_out(self, record: ApprovalRecord, now: datetime) -> None:
        """Close a pending call whose deadline passed."""
        self._close(record, "timed_out", None, None, "no decision before the deadline", now)
        self._audit(record, "timed_out", now, reason=record.reason)

    # --- execution -------------------------------------------------------------------------------

    def release(self, call_id: str, *, server: str, tool: str, requested: dict[str, Any]) -> dict[str, Any]:
        """The arguments an approved call runs with, once; `AuthorityRefusedError` if this call may not run.

        Checked where the call runs: the same call id, the same (server, tool), the arguments the
        model asked for when it was gated, an approval, and no earlier execution.
        """
        record = self._records.get(call_id)
        if record is None or record.decision != "approved":
            raise AuthorityRefusedError("it has not been approved")
        if (record.server, record.tool) != (server, tool):
            raise AuthorityRefusedError(f"the approval is for {record.server}.{record.tool}")
        if arguments_sha256(requested) != (record.requested_sha256 or record.arguments_sha256):
            raise AuthorityRefusedError("the arguments differ from the ones that were approved")
        if call_id in self._started:
            raise AuthorityRefusedError(f"call id {cut(call_id)!r} already ran")
        self._started.add(call_id)
        return record.arguments

    def proofs_of(self, call_id: str) -> list[str]:
        """The signed approvals that count for a call, for the worker to check where it runs."""
        record = self._records.get(call_id)
        return list(record.proofs) if record is not None else []

    def start(self, call_id: str) -> bool:
        """Note that an ungated call with this id runs; False if the id already ran in this run."""
        if call_id in self._started:
            return False
        self._started.add(call_id)
        return True

    def record_outcome(self, call_id: str, outcome: Outcome, now: datetime) -> None:
        """Attach what happened when an approved call ran."""
        record = self._records.get(call_id)
        if record is None:
            return
        record.outcome = outcome
        self._audit(record, "outcome", now, outcome=outcome)

    def _audit(
        self,
        record: ApprovalRecord,
        event: AuditEvent,
        now: datetime,
        *,
        actor: str | None = None,
        reason: str | None = None,
        outcome: Outcome | None = None,
        identity: str | None = None,
        edited_from: str | None = None,
        requester: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.audit.add(
            AuditEntry.of_call(
                record,
                event,
                now,
                actor=actor,
                reason=reason,
                outcome=outcome,
                identity=identity,
                edited_from_sha256=edited_from,
                requester=requester,
                # Only claimed: a client typed it when it started the run.
                requester_proof="claimed" if requester is not None else None,
                rule=rule,
            )
        )
