"""Webhook notices: a gated call or an input request is announced to the approval webhook.

A notice is a step nobody waits for (`steps.NOTIFY`), sent only when the worker has a webhook
(`RunPlan.notify_approvals`). It carries the commands that decide the call, signed as the worker
chose (`RunPlan.command_approver`).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows import steps
from workflows.authority import escalation_at
from workflows.commands import YOU, Signer, answer_command, decision_command
from workflows.input_requests import InputRecord
from workflows.payloads import ApprovalNotice, PendingApproval, RunPlan


def signer(plan: RunPlan) -> Signer:
    """Who the commands this run prints sign as: the worker's choice, recorded in the plan."""
    if plan.command_approver is None:
        return YOU
    return Signer(plan.command_approver, plan.command_key)


def announce_call(plan: RunPlan, pending: PendingApproval, *, escalated: bool = False) -> None:
    """Announce a gated call that waits for a decision (again, for `escalate_to`, once escalated)."""
    me = workflow.info().workflow_id
    sha, who = pending.arguments_sha256, signer(plan)
    _send(
        plan,
        ApprovalNotice(
            workflow_id=me,
            pending=pending,
            escalated=escalated,
            approve_command=decision_command(me, pending.call_id, sha, "approve", who),
            reject_command=decision_command(me, pending.call_id, sha, "reject", who),
        ),
    )


def announce_input(plan: RunPlan, pending: PendingApproval, record: InputRecord, *, escalated: bool = False) -> None:
    """Announce an input request that waits for an answer."""
    # Runs that asked before input requests were announced replay without the notice.
    if not plan.notify_approvals or not workflow.patched("notify-input-requests"):
        return
    me = workflow.info().workflow_id
    question = record.question.question_sha256
    _send(
        plan,
        ApprovalNotice(
            workflow_id=me,
            pending=pending,
            escalated=escalated,
            approve_command="",
            answer_command=answer_command(me, record.call.call_id, question, signer(plan)),
        ),
    )


def input_escalation(plan: RunPlan, record: InputRecord) -> datetime | None:
    """When an input request is announced again for `escalate_to` (None: it is not)."""
    call = record.call
    at = escalation_at(call, plan.agents[call.agent].approval)
    deadline = call.deadline
    if at is None or (deadline is not None and at >= deadline) or not plan.notify_approvals:
        return None
    # The wait gains a timer at that time: runs that asked before it replay without one.
    return at if workflow.patched("announce-input-escalation") else None


def _send(plan: RunPlan, notice: ApprovalNotice) -> None:
    """POST `notice` to the approval webhook, if one is configured; never waited for."""
    if not plan.notify_approvals:
        return
    steps.start(steps.NOTIFY, notice, summary=f"{notice.pending.agent} / notify {notice.pending.tool}")
