"""Judging decisions and answers as they arrive: a fresh approvers file, rechecks, refusals, verdicts.

The workflow's signal and update handlers hand every decision and answer to `Judging`, which
asks the approval gate or the input desk for a verdict with an approvers file read recently
enough, waits for one more read when a signature's key is unknown, audits and logs what is
refused, and applies what counts. The rules themselves (who may decide, what a signature must
bind) live in the gate, the input desk and `workflows/authority.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow

from workflows import steps
from workflows.authority import Authority
from workflows.decoding import cut, parse
from workflows.errors import DecisionRefusedError, InvalidInputError, ToolUnavailableError
from workflows.gate import ApprovalGate, Verdict
from workflows.identity import AuthorityRefusedError, UnknownKeyError, Verifier
from workflows.input_requests import InputDesk
from workflows.payloads import Answer, ApprovalRecord, AuditEntry, Decision, Directory, Review
from workflows.steps import FailedStep

# What an update's judge returns: a decision's verdict or an answer's.
J = TypeVar("J")

# Signed signals by a key the run does not know wait for one look at the current approvers
# file; more than this many at once are refused straight away.
MAX_RECHECKS = 10
REFRESH_INTERVAL = timedelta(minutes=1)
# A signed decision is judged with an approvers directory read at most this long ago; an older
# one is read again first (docs/identity.md states the bound).
DIRECTORY_MAX_AGE = timedelta(seconds=60)


async def read_directory() -> Directory | None:
    """The approvers file as the worker reads it now; `ToolUnavailableError` if it cannot be read."""
    return await steps.run_local(
        steps.APPROVERS,
        None,
        summary="approvers file",
        failed=lambda failure: ToolUnavailableError(f"could not read the approvers file: {failure.cause}"),
    )


class Judging:
    """Judges the decisions and answers of one run and applies those that count."""

    def __init__(
        self,
        authority: Authority,
        gate: ApprovalGate,
        desk: InputDesk,
        *,
        directory_at: datetime | None = None,
        on_directory: Callable[[Directory | None], None] | None = None,
    ) -> None:
        self._authority = authority
        self._gate = gate
        self._desk = desk
        # Told of every fresh read of the approvers file (the run's plan keeps it); None: the run
        # has no plan yet, and nothing is read.
        self._on_directory = on_directory
        # When the approvers directory in use was read (None: a run from before it was tracked).
        self._directory_at = directory_at
        self._refreshed_at: datetime | None = None
        # Bumped by every applied decision, so the wait for approvals wakes on each.
        self.decisions = 0
        # Decision signals waiting for a fresh read of the approvers file, and answer signals.
        self.waiting_decisions: list[tuple[type[Decision], Any]] = []
        self.waiting_answers: list[Any] = []

    # --- decisions -------------------------------------------------------------------------------

    def decision_signal(self, model: type[Decision], value: Any, *, rechecked: bool = False) -> None:
        """Judge an `approve` or `reject` signal; a refused one is audited, never applied."""
        now = workflow.now()
        if not rechecked and self.directory_stale():
            # Judged only with a directory read in the last DIRECTORY_MAX_AGE: a removed key or
            # person stops counting within that bound.
            if len(self.waiting_decisions) >= MAX_RECHECKS:
                self.refused(value, "too many decisions wait for the approvers file to be read; send it again", now)
            else:
                self.waiting_decisions.append((model, value))
            return
        try:
            verdict = self._gate.judge(parse(model, value, f"{model.__name__.lower()} signal"), now)
        except UnknownKeyError as err:
            if rechecked or not self.may_refresh() or len(self.waiting_decisions) >= MAX_RECHECKS:
                self.refused(value, str(err), now)
            else:
                self.waiting_decisions.append((model, value))
            return
        except InvalidInputError as err:
            self.refused(value, err.message, now)
            return
        except AuthorityRefusedError as err:
            self.refused(value, str(err), now)
            return
        self.apply(verdict, now)

    async def recheck_decisions(self) -> None:
        """Read the approvers file again and judge the decision signals that waited for it."""
        waiting, self.waiting_decisions = self.waiting_decisions, []
        await self.refresh_directory()
        for model, value in waiting:
            self.decision_signal(model, value, rechecked=True)

    async def review(self, message: Review) -> ApprovalRecord:
        """Judge a `review` update in its handler and return the recorded decision."""
        verdict = await self._judged_update(lambda: self._gate.judge(message, workflow.now()), message)
        return self.apply(verdict, workflow.now())

    def validate_review(self, message: Review) -> None:
        """The `review` update's validator."""
        self._validate_update(lambda: self._gate.judge(message, workflow.now()), message)

    def apply(self, verdict: Verdict, now: datetime) -> ApprovalRecord:
        """Record a decision the gate allowed, and wake the wait for approvals."""
        record = self._gate.apply(verdict, now)
        self.decisions += 1
        workflow.logger.info(
            "approval decided",
            extra={
                "call_id": record.call_id,
                "approver": verdict.identity.person,
                "decision": verdict.kind,
                "identity": verdict.identity.label,
                "state": record.decision or "waiting for more approvals",
            },
        )
        return record

    # --- answers to input requests ---------------------------------------------------------------

    def answer_signal(self, value: Any, *, rechecked: bool = False) -> None:
        """Judge an `answer` signal; a refused one is audited, never applied."""
        now = workflow.now()
        # Judged only with a directory read in the last DIRECTORY_MAX_AGE, as a decision is: a
        # removed key or person stops counting within that bound. Runs from before replay without.
        if not rechecked and self.directory_stale() and workflow.patched("recheck-stale-answers"):
            if len(self.waiting_answers) >= MAX_RECHECKS:
                self.refused(value, "too many answers wait for the approvers file to be read; send it again", now)
            else:
                self.waiting_answers.append(value)
            return
        try:
            verdict = self._desk.judge(parse(Answer, value, "answer signal"), now)
        except InvalidInputError as err:
            self.refused(value, err.message, now)
            return
        except AuthorityRefusedError as err:
            self.refused(value, str(err), now)
            return
        self._desk.apply(verdict, now)

    async def recheck_answers(self) -> None:
        """Read the approvers file again and judge the answer signals that waited for it."""
        waiting, self.waiting_answers = self.waiting_answers, []
        await self.refresh_directory()
        for value in waiting:
            self.answer_signal(value, rechecked=True)

    async def answer(self, message: Answer) -> AuditEntry:
        """Judge an `answer` update in its handler and return the recorded answer (its audit entry)."""
        verdict = await self._judged_update(lambda: self._desk.judge(message, workflow.now()), message)
        return self._desk.apply(verdict, workflow.now())

    def validate_answer(self, message: Answer) -> None:
        """The `answer` update's validator."""
        self._validate_update(lambda: self._desk.judge(message, workflow.now()), message)

    def answers_needed(self, call_id: str) -> int:
        """How many people must give the same answer: a gated call's quorum, one for an ungated call.

        An answer steers the call as much as its approval did (where the money goes), so it takes
        as many people as the approval took.
        """
        record = self._gate.get(call_id)
        needed = record.approvals_needed if record is not None else 1
        # Runs that asked before answers took the call's quorum replay with one answer.
        return needed if needed > 1 and workflow.patched("input-quorum") else 1

    # --- updates ---------------------------------------------------------------------------------

    async def _judged_update(self, judge: Callable[[], J], message: Review | Answer) -> J:
        """Judge an update in its handler; an unknown key gets one fresh look at the approvers file."""
        if self.directory_stale():
            await self.refresh_directory()
        try:
            try:
                return judge()
            except UnknownKeyError:
                # The validator let it through once: the approvers file may have a key added since.
                await self.refresh_directory()
                return judge()
        except AuthorityRefusedError as err:
            # A refusal after the look, or the state changed since the validator (another came first).
            self.refused(message.model_dump(), str(err), workflow.now())
            raise DecisionRefusedError.because(err) from None

    def _validate_update(self, judge: Callable[[], object], message: Review | Answer) -> None:
        """Refuse an update before it enters history: a flood of refusals costs the run nothing.

        The refusal is told to the sender and logged on the worker. A key the run does not know
        passes once a minute, so that the handler can read the approvers file again.
        """
        try:
            judge()
        except UnknownKeyError as err:
            if not self.may_refresh():
                _log_refused(message.call_id, message.approver, str(err))
                raise DecisionRefusedError.because(err) from None
        except AuthorityRefusedError as err:
            _log_refused(message.call_id, message.approver, str(err))
            raise DecisionRefusedError.because(err) from None

    # --- the approvers file ----------------------------------------------------------------------

    def may_refresh(self) -> bool:
        """Whether the approvers file may be read again now."""
        # At most one look a minute: signatures by made-up keys must not turn into a stream of
        # activities, nor use up the look a real key rotation needs.
        return self._refreshed_at is None or workflow.now() - self._refreshed_at >= REFRESH_INTERVAL

    def directory_stale(self) -> bool:
        """Whether signed decisions wait for a fresh read of the approvers file before being judged."""
        return (
            self._directory_at is not None
            and self._authority.verifier.signed
            and workflow.now() - self._directory_at >= DIRECTORY_MAX_AGE
        )

    async def refresh_directory(self) -> None:
        """Take the approvers file as it is now: a key may have been added, or removed, since."""
        if not (self.may_refresh() or self.directory_stale()) or self._on_directory is None:
            return
        self._refreshed_at = workflow.now()
        unread: list[FailedStep] = []
        directory = await steps.run_local(steps.APPROVERS, None, summary="approvers file", failed=unread.append)
        if unread:
            # The signatures wait for nothing else: they are refused with the directory we have.
            workflow.logger.warning("could not read the approvers file", extra={"error": cut(unread[0].error, 300)})
            return
        if self._directory_at is not None:
            self._directory_at = workflow.now()
        self._on_directory(directory)
        self._authority.verifier = Verifier(directory)

    # --- refusals --------------------------------------------------------------------------------

    def refused(self, value: Any, reason: str, now: datetime) -> None:
        """Audit and log a decision or answer that does not count."""
        call_id = value.get("call_id") if isinstance(value, dict) else None
        actor = value.get("approver") if isinstance(value, dict) else None
        self._gate.refuse(cut(call_id or ""), actor=cut(actor or "?"), reason=reason, now=now)
        _log_refused(call_id, actor, reason)


def _log_refused(call_id: Any, approver: Any, reason: str) -> None:
    workflow.logger.warning(
        "decision refused",
        extra={"call_id": cut(call_id or ""), "approver": cut(approver or "?"), "reason": cut(reason, 300)},
    )
