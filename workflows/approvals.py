"""The approval gate: pending write calls, the decisions on them, and the audit trail.

Pure and deterministic: the workflow passes in `workflow.now()`, so the gate itself can be
unit-tested and carried across continue-as-new as plain data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from workflows.payloads import ApprovalConfig, ApprovalRecord, AuditEntry, PendingApproval

Outcome = Literal["ok", "error", "outcome_unknown"]


def arguments_sha256(arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of `arguments` (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_pending(record: ApprovalRecord) -> PendingApproval:
    """The `pending_approvals` view of a gated call."""
    return PendingApproval(
        call_id=record.call_id, agent=record.agent, server=record.server, tool=record.tool,
        arguments=record.arguments, arguments_sha256=record.arguments_sha256,
        requested_at=record.requested_at, deadline=record.deadline,
    )


class ApprovalGate:
    """Every gated call of one run, keyed by the model's call id."""

    def __init__(
        self,
        config_of: Callable[[str], ApprovalConfig],
        records: list[ApprovalRecord] | None = None,
        audit: list[AuditEntry] | None = None,
    ) -> None:
        self._config_of = config_of
        self._records = {record.call_id: record for record in records or []}
        self.audit: list[AuditEntry] = list(audit or [])

    @property
    def records(self) -> list[ApprovalRecord]:
        """Every gated call so far, in the order it was requested."""
        return list(self._records.values())

    def request(
        self, *, call_id: str, agent: str, server: str, tool: str, arguments: dict[str, Any],
        now: datetime,
    ) -> ApprovalRecord:
        """Open an approval for one call; asking twice for the same call id is a no-op."""
        if call_id in self._records:
            return self._records[call_id]
        timeout = self._config_of(agent).timeout_seconds
        record = ApprovalRecord(
            call_id=call_id, agent=agent, server=server, tool=tool, arguments=arguments,
            arguments_sha256=arguments_sha256(arguments), requested_at=now,
            deadline=now + timedelta(seconds=timeout),
        )
        self._records[call_id] = record
        self._audit(record, "requested", now)
        return record

    def pending(self) -> list[PendingApproval]:
        """The calls still waiting for a decision."""
        return [as_pending(r) for r in self._records.values() if r.decision is None]

    def get(self, call_id: str) -> ApprovalRecord | None:
        """The record of `call_id`, if it was ever gated."""
        return self._records.get(call_id)

    def refusal(self, call_id: str, approver: str, requester: str | None) -> str | None:
        """Why `approver` may not decide `call_id` now, or None when they may."""
        record = self._records.get(call_id)
        if record is None:
            return f"no approval is pending for call id {call_id!r}"
        if record.decision is not None:
            return f"call {call_id!r} was already decided ({record.decision} by {record.decided_by})"
        config = self._config_of(record.agent)
        if config.approvers and approver not in config.approvers:
            return f"{approver!r} is not an approver of agent {record.agent!r}"
        if not config.allow_self_approval and requester is not None and approver == requester:
            return f"{approver!r} requested this run and agent {record.agent!r} forbids self-approval"
        return None

    def decide(
        self, call_id: str, *, approved: bool, approver: str, reason: str, now: datetime,
    ) -> ApprovalRecord:
        """Record a decision that `refusal` allowed."""
        record = self._records[call_id]
        record.decision = "approved" if approved else "rejected"
        record.decided_by = approver
        record.decided_at = now
        record.reason = reason or None
        self._audit(record, record.decision, now, actor=approver, reason=reason or None)
        return record

    def refuse(self, call_id: str, *, actor: str, reason: str, now: datetime) -> AuditEntry:
        """Note an attempt to decide that was refused; it changes nothing else."""
        record = self._records.get(call_id)
        entry = AuditEntry(
            at=now, event="refused", call_id=call_id, actor=actor, reason=reason,
            agent=record.agent if record else None, server=record.server if record else None,
            tool=record.tool if record else None,
        )
        self.audit.append(entry)
        return entry

    def next_deadline(self) -> datetime | None:
        """The earliest deadline among pending calls."""
        deadlines = [r.deadline for r in self._records.values() if r.decision is None and r.deadline]
        return min(deadlines) if deadlines else None

    def overdue(self, now: datetime) -> list[ApprovalRecord]:
        """Pending calls whose deadline has passed."""
        return [
            r for r in self._records.values()
            if r.decision is None and r.deadline is not None and r.deadline <= now
        ]

    def time_out(self, call_id: str, now: datetime) -> ApprovalRecord:
        """Close a pending call whose deadline passed."""
        record = self._records[call_id]
        record.decision = "timed_out"
        record.decided_at = now
        record.reason = "no decision before the deadline"
        self._audit(record, "timed_out", now, reason=record.reason)
        return record

    def record_outcome(self, call_id: str, outcome: Outcome, now: datetime) -> None:
        """Attach what happened when an approved call ran."""
        record = self._records.get(call_id)
        if record is None:
            return
        record.outcome = outcome
        self._audit(record, "outcome", now, outcome=outcome)

    def _audit(
        self, record: ApprovalRecord, event: Any, now: datetime, *, actor: str | None = None,
        reason: str | None = None, outcome: Outcome | None = None,
    ) -> None:
        self.audit.append(AuditEntry(
            at=now, event=event, call_id=record.call_id, agent=record.agent, server=record.server,
            tool=record.tool, actor=actor, reason=reason, outcome=outcome,
            arguments_sha256=record.arguments_sha256,
        ))


def decision_command(workflow_id: str, call_id: str, signal: Literal["approve", "reject"]) -> str:
    """The exact `temporal` CLI command that approves or rejects one call."""
    who = '"approver": "<you>"' if signal == "approve" else '"approver": "<you>", "reason": "<why>"'
    return (
        f"temporal workflow signal --workflow-id {workflow_id} --name {signal} "
        f"--input '{{\"call_id\": \"{call_id}\", {who}}}'"
    )
