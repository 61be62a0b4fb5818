"""What the inbox asks Temporal: waiting calls, one call's details, a run's audit, finished runs.

Each run's own queries are the authority (`pending_approvals`, `call_details`, `audit`); the
inbox only reads them and sends signed decisions with the `review` update.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from console import signing
from console.decisions import send_answer, send_review
from console.errors import DecisionNotRecordedError
from console.waiting import QUERY_CONCURRENCY, waiting_calls
from workflows.arguments import schema_errors
from workflows.authority import deciders
from workflows.identity import Kind
from workflows.input_requests import answer_sha256
from workflows.payloads import (
    Answer,
    ApprovalRecordView,
    AuditEntryView,
    CallDetails,
    PendingApprovalView,
    PipelineStatus,
    Review,
    RunStatus,
)

# How long a call's deciders are reused while listing: the list refreshes every few seconds, and
# who may decide changes only with escalation (the decision itself is always checked by the run).
DETAILS_TTL_SECONDS = 10.0
# Finished runs searched per page: each answers an `audit` query.
SEARCH_LIMIT = 50
# A finished run's query is answered by replaying it on a worker of its task queue; a run whose
# queue has no worker any more is skipped after this long instead of holding the page.
SEARCH_QUERY_TIMEOUT = timedelta(seconds=3)


@dataclass
class RunView:
    """One run as the inbox shows it: its type, Temporal's status, and the run's own `status` and `audit`."""

    workflow_id: str
    type: str
    execution: str
    status: RunStatus | PipelineStatus
    audit: list[AuditEntryView]


@dataclass
class Runs:
    """The inbox's Temporal side: one client, the inbox service key, and a small details cache."""

    client: Client
    key: Ed25519PrivateKey | None
    service: str = "inbox"
    wait: timedelta = timedelta(seconds=10)
    _details: dict[tuple[str, str, str], tuple[float, CallDetails | None]] = field(default_factory=dict)

    async def waiting(self, person: str, *, agent: str | None = None, mine: bool = False) -> list[dict[str, Any]]:
        """Every waiting call, newest first, each marked `decidable` for `person`."""
        calls, _ = await self.waiting_page(person, agent=agent, mine=mine)
        return calls

    async def waiting_page(
        self, person: str, *, agent: str | None = None, mine: bool = False, page: int = 1, per_page: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page (1-based) of the waiting calls, newest first, each marked `decidable` for `person`;
        and how many there are in all. Without `per_page`, every call.

        Only the calls on the page are asked who may decide them (a `call_details` query each),
        unless `mine` picks the calls `person` may decide: that needs every call's deciders.
        """
        calls = await waiting_calls(self.client, agent=agent, wait=self.wait)
        calls.reverse()
        shown = slice((page - 1) * per_page, page * per_page) if per_page is not None else slice(None)
        if not mine:
            await self._mark(calls[shown], person)
            return calls[shown], len(calls)
        await self._mark(calls, person)
        mine_only = [c for c in calls if c["decidable"]]
        return mine_only[shown], len(mine_only)

    async def _mark(self, calls: list[dict[str, Any]], person: str) -> None:
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def mark(call: dict[str, Any]) -> None:
            async with gate:
                details = await self._cached_details(call)
            call["deciders"] = details.deciders if details else None
            call["decidable"] = details is not None and may_decide(person, details)

        await asyncio.gather(*(mark(call) for call in calls))

    async def _cached_details(self, call: dict[str, Any]) -> CallDetails | None:
        key = (call["workflow_id"], call["call_id"], call["arguments_sha256"])
        hit = self._details.get(key)
        if hit is not None and time.monotonic() - hit[0] < DETAILS_TTL_SECONDS:
            return hit[1]
        details = await self.details(call["workflow_id"], call["call_id"])
        if len(self._details) > 10_000:
            self._details.clear()  # bounded; refilled on the next listing
        self._details[key] = (time.monotonic(), details)
        return details

    async def details(self, workflow_id: str, call_id: str) -> CallDetails | None:
        """The run's `call_details` for one call; None when it is not pending (or the run is gone)."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            found: CallDetails | None = await handle.query(
                "call_details",
                call_id,
                result_type=CallDetails | None,  # type: ignore[arg-type]
                rpc_timeout=self.wait,
            )
        except (WorkflowQueryFailedError, RPCError):
            return None
        except ValueError:  # pydantic's ValidationError: not a `call_details` answer, so not pending
            return None
        return found

    async def run(self, workflow_id: str) -> RunView:
        """A run's type, state and audit (a pipeline: its steps and children's pending calls)."""
        handle = self.client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        kind = description.workflow_type
        status_type: type[RunStatus | PipelineStatus] = PipelineStatus if kind == "PipelineWorkflow" else RunStatus
        status = await handle.query("status", result_type=status_type, rpc_timeout=self.wait)
        audit: list[AuditEntryView] = []
        if kind == "AgentWorkflow":
            audit = await handle.query("audit", result_type=list[AuditEntryView], rpc_timeout=self.wait)
        return RunView(
            workflow_id=workflow_id,
            type=kind,
            execution=description.status.name if description.status else "UNKNOWN",
            status=status,
            audit=audit,
        )

    async def search(self, *, agent: str | None, decided_by: str | None, tool: str | None) -> list[dict[str, Any]]:
        """Audit entries of finished runs (newest first), filtered by agent, decider and tool."""
        query = 'WorkflowType="AgentWorkflow" AND ExecutionStatus!="Running"'
        if agent:
            query += f' AND AirlockAgent="{agent}"'
        ids = []
        async for execution in self.client.list_workflows(query, limit=SEARCH_LIMIT):
            ids.append(execution.id)
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def entries(workflow_id: str) -> list[dict[str, Any]]:
            async with gate:
                try:
                    audit: list[AuditEntryView] = await self.client.get_workflow_handle(workflow_id).query(
                        "audit", result_type=list[AuditEntryView], rpc_timeout=min(self.wait, SEARCH_QUERY_TIMEOUT)
                    )
                except (WorkflowQueryFailedError, RPCError, ValueError):  # ValueError: a reply not an audit
                    return []
            return [{"workflow_id": workflow_id, **entry.model_dump(mode="json")} for entry in audit]

        rows = [row for group in await asyncio.gather(*(entries(i) for i in ids)) for row in group]
        if tool:
            rows = [r for r in rows if tool in (r.get("tool"), f"{r.get('server')}.{r.get('tool')}")]
        if decided_by:
            decided = {
                (r["workflow_id"], r["call_id"])
                for r in rows
                if r.get("event") in ("approved", "rejected") and r.get("actor") == decided_by
            }
            rows = [r for r in rows if (r["workflow_id"], r["call_id"]) in decided]
        rows.sort(key=lambda r: str(r.get("at")), reverse=True)
        return rows

    async def decide(
        self,
        person: str,
        workflow_id: str,
        call_id: str,
        *,
        seen_sha256: str,
        decision: Literal["approve", "reject"],
        reason: str = "",
        edit: dict[str, Any] | None = None,
    ) -> ApprovalRecordView:
        """Check, sign (as the inbox, for `person`) and send one decision; return the recorded one."""
        details = await self.details(workflow_id, call_id)
        if details is None:
            raise DecisionNotRecordedError(f"call {call_id} is not pending in {workflow_id} (decided already?)")
        pending = details.pending
        if pending.arguments_sha256 != seen_sha256:
            raise DecisionNotRecordedError("the call's arguments changed since you opened it: review them again")
        if not may_decide(person, details):
            raise DecisionNotRecordedError(f"{person} may not decide this call")
        if edit is not None and signing.arguments_sha256(edit) == seen_sha256:
            edit = None  # unchanged: a plain approval, as the gate sees it
        if edit is not None:
            problems = schema_errors(details.input_schema, edit)
            if problems:
                raise DecisionNotRecordedError(
                    "the edited arguments do not match the tool's schema: " + "; ".join(problems)
                )
        edited = signing.arguments_sha256(edit) if edit is not None else None
        run_id = await self._run_of(workflow_id, pending)
        signature = self._signature(
            person, workflow_id, call_id, decision, seen_sha256, run_id=run_id, edited_sha256=edited
        )
        payload = Review(
            call_id=call_id,
            approver=person,
            arguments_sha256=seen_sha256,
            decision=decision,
            reason=reason,
            arguments=edit,
            signature=signature,
        )
        handle = self.client.get_workflow_handle(workflow_id)
        return await send_review(handle, payload.model_dump(mode="json", exclude_none=True), self.wait)

    async def answer(
        self,
        person: str,
        workflow_id: str,
        call_id: str,
        *,
        seen_sha256: str,
        action: Literal["accept", "decline", "cancel"],
        content: dict[str, Any] | None,
    ) -> AuditEntryView:
        """Check, sign (as the inbox, for `person`) and send one answer to an input request; the recorded one."""
        details = await self.details(workflow_id, call_id)
        pending = details.pending if details is not None else None
        if details is None or pending is None or pending.kind != "input" or pending.question is None:
            raise DecisionNotRecordedError(
                f"call {call_id} has no input request pending in {workflow_id} (answered already?)"
            )
        sha = pending.question.question_sha256
        if sha != seen_sha256:
            raise DecisionNotRecordedError("the server asked something else since you opened it: read it again")
        if not may_decide(person, details):
            raise DecisionNotRecordedError(f"{person} may not answer for this call")
        signature = self._signature(
            person,
            workflow_id,
            call_id,
            "answer",
            sha,
            run_id=await self._run_of(workflow_id, pending),
            answer_sha256=answer_sha256(action, content),
        )
        payload = Answer(
            call_id=call_id, approver=person, question_sha256=sha, action=action, content=content, signature=signature
        )
        handle = self.client.get_workflow_handle(workflow_id)
        return await send_answer(handle, payload.model_dump(mode="json", exclude_none=True), self.wait)

    async def _run_of(self, workflow_id: str, pending: PendingApprovalView) -> str:
        """The run that shows the call: as its pending entry says, else the workflow's current run."""
        if pending.run_id:
            return pending.run_id
        return (await self.client.get_workflow_handle(workflow_id).describe()).run_id

    def _signature(
        self, person: str, workflow_id: str, call_id: str, kind: Kind, sha: str, *, run_id: str, **extra: Any
    ) -> str | None:
        """The inbox's signature, for `person`, on `kind` for this call in `run_id` (None: no key)."""
        if self.key is None:
            return None
        return signing.sign_decision(
            self.key,
            signer=self.service,
            approver=person,
            namespace=self.client.namespace,
            workflow_id=workflow_id,
            run_id=run_id,
            call_id=call_id,
            decision=kind,
            arguments_sha256=sha,
            **extra,
        )


def may_decide(person: str, details: CallDetails) -> bool:
    """Whether the run would let `person` decide this call (the run checks again when it arrives).

    The run's own rule (`workflows.authority.Deciders`), asked of what its `call_details` showed.
    """
    shown = deciders(
        details.deciders, requester=details.pending.requester, allow_self_approval=details.allow_self_approval
    )
    return shown.allows(person)
