"""Input requests: a running call's MCP server asks people for input, and answers are judged like decisions.

Pure and deterministic, like the approval gate, with which it shares the run's authority (the
verifier, the used signatures, who may decide a call: `workflows/authority.py`) and its audit log
(`workflows/audit.py`): an answer counts only for the question it names (its hash), with
content that fits the requested schema, from a person allowed to decide the call, proven by a
signature when the run has an approvers file. Anything else changes nothing and is audited as
refused. A question asked while a gated call runs is decided under that call's rules: an
`accept` counts once as many distinct people as approved the call (`required`) gave the very same
answer (a differing one starts the count again); `decline` and `cancel` need one person, as a
rejection does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workflows.arguments import arguments_sha256, schema_errors
from workflows.audit import AuditLog
from workflows.authority import Authority
from workflows.decoding import cut
from workflows.identity import AuthorityRefusedError, Identity
from workflows.payloads import (
    Answer,
    AnswerAction,
    ApprovalConfig,
    ApprovalRecord,
    AuditEntry,
    AuditEvent,
    GivenAnswer,
    InputQuestion,
    PendingApproval,
)

# Bounds on what a person's answer may carry into history and back to the server.
MAX_CONTENT_BYTES = 16_000
# A server that asks again after every answer would keep a call (and its run) waiting forever.
MAX_QUESTIONS_PER_CALL = 5


def answer_sha256(action: AnswerAction, content: dict[str, Any] | None) -> str:
    """SHA-256 of an answer's canonical JSON `{"action", "content"}`: what a signature on it binds."""
    return arguments_sha256({"action": action, "content": content})


def content_problems(schema: dict[str, Any], content: Any) -> list[str]:
    """How `content` breaks the spec's flat-object rule or the requested schema, as short lines."""
    if not isinstance(content, dict):
        return ["(top level): an accepted form answer is a JSON object"]
    properties = schema.get("properties", {})
    problems = [f"{cut(key, 40)}: not a field of the form" for key in content if key not in properties]
    for key, value in content.items():
        flat = isinstance(value, str | int | float | bool) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        )
        if not flat:
            problems.append(f"{cut(key, 40)}: a value is a string, number, boolean or a list of strings")
    if problems:
        return problems[:5]
    size = len(json.dumps(content, ensure_ascii=False).encode())
    if size > MAX_CONTENT_BYTES:
        return [f"(top level): {size} bytes, more than the {MAX_CONTENT_BYTES} accepted"]
    return schema_errors(schema, content)


@dataclass
class InputRecord:
    """One question a call's server asked, and the answer once there is one."""

    # The call as approvers see it; `requested_at` and `deadline` are the question's.
    call: ApprovalRecord
    question: InputQuestion
    action: AnswerAction | None = None
    content: dict[str, Any] | None = None
    answered_by: str | None = None
    identity: str | None = None
    # The `answer_sha256` of the accept that `call.approved_by` gave so far (a quorum's candidate).
    candidate: str | None = None
    # The signatures of the answers that count (the candidate's, for a quorum): the worker checks
    # them again before it sends the call with the answer (activities/authority.py).
    proofs: list[str] = field(default_factory=list)

    def given(self) -> GivenAnswer:
        """The answer as it is sent back with the call, with the signatures that make it count."""
        assert self.action is not None
        return GivenAnswer(
            question_sha256=self.question.question_sha256,
            action=self.action,
            content=self.content,
            signatures=list(self.proofs),
        )


@dataclass(frozen=True)
class AnswerVerdict:
    """An answer that may be applied: the question, who answered and what."""

    record: InputRecord
    identity: Identity
    action: AnswerAction
    content: dict[str, Any] | None
    # The answer's signature, when it was signed.
    signature: str | None = None


class InputDesk:
    """The open input requests of one run, keyed by the call whose server asked."""

    def __init__(self, authority: Authority, audit: AuditLog, *, config_of: Callable[[str], ApprovalConfig]) -> None:
        self._authority = authority
        self._audit_log = audit
        self._config_of = config_of
        self._open: dict[str, InputRecord] = {}
        self._asked: dict[str, int] = {}

    def open(
        self,
        *,
        call_id: str,
        agent: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        question: InputQuestion,
        now: datetime,
        needed: int = 1,
    ) -> InputRecord:
        """Open a question; `needed` identical accepts answer it.

        `AuthorityRefusedError` when the call asked too often.
        """
        asked = self._asked.get(call_id, 0)
        if asked >= MAX_QUESTIONS_PER_CALL:
            raise AuthorityRefusedError(
                f"its server asked for input more than {MAX_QUESTIONS_PER_CALL} times in one call"
            )
        self._asked[call_id] = asked + 1
        call = ApprovalRecord(
            call_id=call_id,
            agent=agent,
            server=server,
            tool=tool,
            arguments=arguments,
            arguments_sha256=arguments_sha256(arguments),
            requested_at=now,
            deadline=now + timedelta(seconds=self._config_of(agent).timeout_seconds),
            approvals_needed=needed,
        )
        record = InputRecord(call=call, question=question)
        self._open[call_id] = record
        self._audit(record, "input_requested", now, reason=cut(question.message, 300))
        return record

    def close(self, call_id: str) -> None:
        """Forget a question once its answer went back with the call."""
        self._open.pop(call_id, None)

    def waiting(self, call_id: str) -> InputRecord | None:
        """The call's question while it waits for an answer."""
        record = self._open.get(call_id)
        return record if record is not None and record.action is None else None

    def pending(self) -> list[PendingApproval]:
        """The questions still waiting for an answer, as `pending_approvals` lists them."""
        return [self.as_pending(r) for r in self._open.values() if r.action is None]

    def as_pending(self, record: InputRecord) -> PendingApproval:
        """The `pending_approvals` view of an open question (`kind` "input")."""
        call = record.call
        return PendingApproval(
            call_id=call.call_id,
            agent=call.agent,
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
            arguments_sha256=call.arguments_sha256,
            requested_at=call.requested_at,
            deadline=call.deadline,
            approvals_needed=max(call.approvals_needed - len(call.approved_by), 0),
            approved_by=list(call.approved_by),
            requester=self._authority.requester,
            run_id=self._authority.run_id or None,
            kind="input",
            question=record.question,
        )

    def judge(self, message: Answer, now: datetime) -> AnswerVerdict:
        """Check an answer without changing anything; `AuthorityRefusedError` says why it does not count."""
        record = self._open.get(message.call_id)
        if record is None or record.action is not None:
            raise AuthorityRefusedError(f"no input request is pending for call id {cut(message.call_id)!r}")
        question = record.question
        if message.question_sha256 != question.question_sha256:
            raise AuthorityRefusedError(
                "wrong question_sha256: it is not the hash of the question pending for this call "
                "(read it again with pending_approvals)"
            )
        content = message.content
        if message.action != "accept" and content is not None:
            raise AuthorityRefusedError(f"content belongs to an accepted answer, not to {message.action}")
        if message.action == "accept" and question.mode == "url" and content is not None:
            raise AuthorityRefusedError("a URL request is accepted without content (the person acts at the URL)")
        if message.action == "accept" and question.mode == "form":
            problems = content_problems(question.requested_schema or {}, content)
            if problems:
                raise AuthorityRefusedError("the content does not match the requested schema: " + "; ".join(problems))
        identity = self._authority.identify(
            message.signature,
            call_id=message.call_id,
            decision="answer",
            approver=message.approver,
            arguments_sha256=question.question_sha256,
            answer_sha256=answer_sha256(message.action, content),
            now=now,
        )
        call = record.call
        self._authority.check(call, self._config_of(call.agent), identity.person, now)
        same = record.candidate == answer_sha256(message.action, content)
        if message.action == "accept" and same and identity.person in record.call.approved_by:
            raise AuthorityRefusedError(
                f"{cut(identity.person)!r} already gave this answer; another person must give it too"
            )
        signature = message.signature if identity.token_id is not None else None
        return AnswerVerdict(
            record=record, identity=identity, action=message.action, content=content, signature=signature
        )

    def apply(self, verdict: AnswerVerdict, now: datetime) -> AuditEntry:
        """Record an answer that `judge` allowed; returns its audit entry."""
        record = verdict.record
        self._authority.spend(verdict.identity)
        given = answer_sha256(verdict.action, verdict.content)
        call = record.call
        if verdict.action == "accept" and call.approvals_needed > 1:
            if record.candidate != given:
                # Another answer than the one counted so far: the quorum is for this one now.
                record.candidate = given
                call.approved_by = []
                record.proofs = []
            call.approved_by.append(verdict.identity.person)
            if verdict.signature is not None:
                record.proofs.append(verdict.signature)
            missing = call.approvals_needed - len(call.approved_by)
            if missing > 0:
                return self._audit(
                    record,
                    "answered",
                    now,
                    actor=verdict.identity.person,
                    identity=verdict.identity.label,
                    action=verdict.action,
                    answer=given,
                    reason=f"waiting for {missing} more identical answer(s) from other people",
                )
        if not (verdict.action == "accept" and call.approvals_needed > 1):
            # One person decides it: theirs is the one signature that counts.
            record.proofs = [verdict.signature] if verdict.signature is not None else []
        record.action = verdict.action
        record.content = verdict.content
        record.answered_by = verdict.identity.person
        record.identity = verdict.identity.label
        return self._audit(
            record,
            "answered",
            now,
            actor=record.answered_by,
            identity=record.identity,
            action=verdict.action,
            answer=given,
        )

    def time_out(self, record: InputRecord, now: datetime) -> None:
        """Answer `cancel` for a question nobody answered before its deadline (the spec's dismissal)."""
        record.action = "cancel"
        self._audit(
            record, "timed_out", now, reason="no answer before the deadline: the server is told cancel", action="cancel"
        )

    def _audit(
        self,
        record: InputRecord,
        event: AuditEvent,
        now: datetime,
        *,
        actor: str | None = None,
        reason: str | None = None,
        identity: str | None = None,
        action: AnswerAction | None = None,
        answer: str | None = None,
    ) -> AuditEntry:
        entry = AuditEntry.of_call(
            record.call,
            event,
            now,
            actor=actor,
            reason=reason,
            identity=identity,
            question_sha256=record.question.question_sha256,
            action=action,
            answer_sha256=answer,
        )
        return self._audit_log.add(entry)
