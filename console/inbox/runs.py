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
from console.decisions import send_review, send_update
from console.waiting import QUERY_CONCURRENCY, waiting_calls
from workflows.arguments import schema_errors
from workflows.identity import Kind, canonical_name
from workflows.input_requests import answer_sha256
from workflows.payloads import Answer, Review

# How long a call's deciders are reused while listing: the list refreshes every few seconds, and
# who may decide changes only with escalation (the decision itself is always checked by the run).
DETAILS_TTL_SECONDS = 10.0
# Finished runs searched per page: each answers an `audit` query.
SEARCH_LIMIT = 50
# A finished run's query is answered by replaying it on a worker of its task queue; a run whose
# queue has no worker any more is skipped after this long instead of holding the page.
SEARCH_QUERY_TIMEOUT = timedelta(seconds=3)


class DecisionError(Exception):
    """The inbox will not send this decision (not allowed, stale hash, bad edit); the message says why."""


@dataclass
class Runs:
    """The inbox's Temporal side: one client, the inbox service key, and a small details cache."""

    client: Client
    key: Ed25519PrivateKey | None
    service: str = "inbox"
    wait: timedelta = timedelta(seconds=10)
    _details: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    async def waiting(self, person: str, *, agent: str | None = None, mine: bool = False) -> list[dict[str, Any]]:
        """Every waiting call, newest first, each marked `decidable` for `person`."""
        calls = await waiting_calls(self.client, agent=agent, wait=self.wait)
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def mark(call: dict[str, Any]) -> None:
            async with gate:
                details = await self._cached_details(call)
            call["deciders"] = details.get("deciders") if details else None
            call["decidable"] = details is not None and may_decide(person, details)

        await asyncio.gather(*(mark(call) for call in calls))
        calls.reverse()
        return [c for c in calls if c["decidable"]] if mine else calls

    async def _cached_details(self, call: dict[str, Any]) -> dict[str, Any] | None:
        key = (call["workflow_id"], call["call_id"], call["arguments_sha256"])
        hit = self._details.get(key)
        if hit is not None and time.monotonic() - hit[0] < DETAILS_TTL_SECONDS:
            return hit[1]
        details = await self.details(call["workflow_id"], call["call_id"])
        if len(self._details) > 10_000:
            self._details.clear()  # bounded; refilled on the next listing
        self._details[key] = (time.monotonic(), details)
        return details

    async def details(self, workflow_id: str, call_id: str) -> dict[str, Any] | None:
        """The run's `call_details` for one call; None when it is not pending (or the run is gone)."""
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            found: dict[str, Any] | None = await handle.query(
                "call_details",
                call_id,
                result_type=dict | None,  # type: ignore[arg-type]
                rpc_timeout=self.wait,
            )
        except (WorkflowQueryFailedError, RPCError):
            return None
        return found

    async def run(self, workflow_id: str) -> dict[str, Any]:
        """A run's type, state and audit (a pipeline: its steps and children's pending calls)."""
        handle = self.client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        kind = description.workflow_type
        status = await handle.query("status", result_type=dict, rpc_timeout=self.wait)
        audit: list[dict[str, Any]] = []
        if kind == "AgentWorkflow":
            audit = await handle.query("audit", result_type=list, rpc_timeout=self.wait)
        return {
            "workflow_id": workflow_id,
            "type": kind,
            "execution": description.status.name if description.status else "UNKNOWN",
            "status": status,
            "audit": audit,
        }

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
                    audit: list[dict[str, Any]] = await self.client.get_workflow_handle(workflow_id).query(
                        "audit", result_type=list, rpc_timeout=min(self.wait, SEARCH_QUERY_TIMEOUT)
                    )
                except (WorkflowQueryFailedError, RPCError):
                    return []
            return [{"workflow_id": workflow_id, **entry} for entry in audit]

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
    ) -> dict[str, Any]:
        """Check, sign (as the inbox, for `person`) and send one decision; return the recorded one."""
        details = await self.details(workflow_id, call_id)
        if details is None:
            raise DecisionError(f"call {call_id} is not pending in {workflow_id} (decided already?)")
        pending = details["pending"]
        if pending["arguments_sha256"] != seen_sha256:
            raise DecisionError("the call's arguments changed since you opened it: review them again")
        if not may_decide(person, details):
            raise DecisionError(f"{person} may not decide this call")
        if edit is not None and signing.arguments_sha256(edit) == seen_sha256:
            edit = None  # unchanged: a plain approval, as the gate sees it
        if edit is not None:
            problems = schema_errors(details.get("input_schema") or {}, edit)
            if problems:
                raise DecisionError("the edited arguments do not match the tool's schema: " + "; ".join(problems))
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
    ) -> dict[str, Any]:
        """Check, sign (as the inbox, for `person`) and send one answer to an input request; the recorded one."""
        details = await self.details(workflow_id, call_id)
        pending = (details or {}).get("pending") or {}
        question = pending.get("question") or {}
        if details is None or pending.get("kind") != "input":
            raise DecisionError(f"call {call_id} has no input request pending in {workflow_id} (answered already?)")
        sha = str(question.get("question_sha256"))
        if sha != seen_sha256:
            raise DecisionError("the server asked something else since you opened it: read it again")
        if not may_decide(person, details):
            raise DecisionError(f"{person} may not answer for this call")
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
        return await send_update(handle, "answer", payload.model_dump(mode="json", exclude_none=True), self.wait)

    async def _run_of(self, workflow_id: str, pending: dict[str, Any]) -> str:
        """The run that shows the call: as its pending entry says, else the workflow's current run."""
        named = pending.get("run_id")
        if isinstance(named, str) and named:
            return named
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


def may_decide(person: str, details: dict[str, Any]) -> bool:
    """Whether the run would let `person` decide this call (the run checks again when it arrives)."""
    # Deciders come in canonical form; the proxy may spell the person otherwise.
    person = canonical_name(person)
    deciders = details.get("deciders")
    if deciders is not None:
        return person in {canonical_name(name) for name in deciders}
    requester = details.get("pending", {}).get("requester")
    return bool(details.get("allow_self_approval")) or requester is None or person != canonical_name(requester)
