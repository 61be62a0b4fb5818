"""One run's authority: the verifier, the signatures used, and who may decide a call now.

Pure and deterministic (the time is passed in), so the approval gate and the input desk judge with
the same object and carry it across continue-as-new as plain data. `Deciders` is the one rule of
who may decide a call: the gate and the input desk refuse by it, `call_details` shows it, and the
inbox asks it of what `call_details` showed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.decoding import cut
from workflows.identity import AuthorityRefusedError, Expected, Identity, Kind, Verifier, canonical_name
from workflows.payloads import ApprovalConfig, ApprovalRecord


@dataclass(frozen=True)
class Deciders:
    """Who may decide one call now."""

    # Canonical names of the people who may; None: anyone whose identity is proven.
    people: frozenset[str] | None
    # The run's requester (canonical) when the agent forbids self-approval: never a decider.
    excluded: str | None = None

    def refusal(self, person: str, agent: str) -> str | None:
        """Why `person` may not decide a call of `agent` (None: they may)."""
        person = canonical_name(person)
        # The requester is only claimed (a client typed it): this stops the named requester, in
        # any spelling of their name, and nobody who typed another name (docs/identity.md).
        if self.excluded is not None and person == self.excluded:
            return f"{cut(person)!r} requested this run (claimed) and agent {agent!r} forbids self-approval"
        if self.people is not None and person not in self.people:
            return f"{cut(person)!r} is not an approver of agent {agent!r}"
        return None

    def allows(self, person: str) -> bool:
        """Whether `person` may decide the call."""
        return self.refusal(person, "") is None

    def listed(self) -> list[str] | None:
        """The people who may decide, sorted, as `call_details` shows them (None: not a list)."""
        if self.people is None:
            return None
        return sorted(person for person in self.people if person != self.excluded)


def deciders(people: Iterable[str] | None, *, requester: str | None, allow_self_approval: bool) -> Deciders:
    """The deciders of a call: `people` (None: anyone), never the requester when self-approval is forbidden."""
    excluded = canonical_name(requester) if requester is not None and not allow_self_approval else None
    listed = frozenset(canonical_name(person) for person in people) if people is not None else None
    return Deciders(listed, excluded)


def escalation_at(record: ApprovalRecord, config: ApprovalConfig) -> datetime | None:
    """When a call's escalation opens it to `escalate_to`, if its agent escalates."""
    after = config.escalate_after_seconds
    return record.requested_at + timedelta(seconds=after) if after is not None else None


class Authority:
    """What makes a decision or an answer count in one run: a proven identity, a signature used once."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        workflow_id: str,
        requester: str | None,
        namespace: str = "",
        run_id: str = "",
        used_tokens: list[str] | None = None,
    ) -> None:
        # Replaced when the approvers file is read again: a key may have been added or removed.
        self.verifier = verifier
        self.workflow_id = workflow_id
        # What a signature must bind besides the workflow id; "" (an authority built without them)
        # binds nothing a signature can name, so every signed decision is refused.
        self.namespace = namespace
        self.run_id = run_id
        self.requester = requester
        # The single-use ids of signatures that counted, carried across continue-as-new.
        self.used_tokens: list[str] = list(used_tokens or [])

    def identify(
        self,
        signature: str | None,
        *,
        call_id: str,
        decision: Kind,
        approver: str,
        arguments_sha256: str,
        now: datetime,
        edited_sha256: str | None = None,
        answer_sha256: str | None = None,
    ) -> Identity:
        """Who sent a decision (or an answer), proven as the run requires; `AuthorityRefusedError` says why not.

        A signature counts once: one that was already used is refused (replay protection).
        """
        identity = self.verifier.identify(
            signature,
            Expected(
                workflow_id=self.workflow_id,
                call_id=call_id,
                decision=decision,
                approver=approver,
                arguments_sha256=arguments_sha256,
                edited_sha256=edited_sha256,
                answer_sha256=answer_sha256,
                namespace=self.namespace,
                run_id=self.run_id,
            ),
            now,
        )
        if identity.token_id is not None and identity.token_id in self.used_tokens:
            what = "answer" if decision == "answer" else "decision"
            raise AuthorityRefusedError(f"this signature was already used; sign each {what} anew")
        return identity

    def spend(self, identity: Identity) -> None:
        """Note that a signature counted, so it never counts again."""
        if identity.token_id is not None:
            self.used_tokens.append(identity.token_id)

    def deciders(self, record: ApprovalRecord, config: ApprovalConfig, now: datetime) -> Deciders:
        """Who may decide `record` now: its agent's approvers (and `escalate_to` once escalated)."""
        if not config.approvers:
            return deciders(None, requester=self.requester, allow_self_approval=config.allow_self_approval)
        people = self.verifier.members(config.approvers)
        at = escalation_at(record, config)
        if record.escalated_at is not None or (at is not None and now >= at):
            people |= self.verifier.members(config.escalate_to)
        return deciders(people, requester=self.requester, allow_self_approval=config.allow_self_approval)

    def check(self, record: ApprovalRecord, config: ApprovalConfig, person: str, now: datetime) -> None:
        """`AuthorityRefusedError` unless `person` may decide `record` now."""
        refusal = self.deciders(record, config, now).refusal(person, record.agent)
        if refusal is not None:
            raise AuthorityRefusedError(refusal)
