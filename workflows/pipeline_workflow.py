"""`PipelineWorkflow`: run declared steps in order, each a child `AgentWorkflow` with its own gate."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

from workflows import steps
from workflows.arguments import arguments_sha256
from workflows.commands import YOU, Signer, answer_command, decision_command
from workflows.decoding import parse, received
from workflows.errors import DOMAIN_ERRORS, InvalidInputError, PipelineError
from workflows.payloads import (
    AgentResult,
    ChildPending,
    PendingApproval,
    PipelineDefinition,
    PipelineLookup,
    PipelinePending,
    PipelineRequest,
    PipelineResult,
    PipelineState,
    PipelineStatus,
    PipelineStep,
    StepResult,
)
from workflows.templates import holds, render


@workflow.defn(name="PipelineWorkflow", failure_exception_types=DOMAIN_ERRORS)
class PipelineWorkflow:
    """Run a pipeline's steps in order; later steps see earlier outputs through templates."""

    def __init__(self) -> None:
        self._state: PipelineState = "starting"
        self._name = ""
        self._steps: list[StepResult] = []
        # Pending approvals of each child run, by child workflow id, as the children report them.
        self._pending: dict[str, list[PendingApproval]] = {}
        # Who the commands in `status` sign as: the worker's choice, from the recorded definition.
        self._signer: Signer = YOU

    # `Any`, a default and `*extra`, as in AgentWorkflow: bad input fails the run, not the task.
    @workflow.run
    async def run(self, raw: Any = None, *extra: Any) -> PipelineResult:
        """Resolve the definition, then run each step as a child `AgentWorkflow`."""
        request = parse(PipelineRequest, received(raw, extra), "PipelineWorkflow input")
        definition = await self._definition(request)
        self._name = definition.name
        if definition.command_approver is not None:
            self._signer = Signer(definition.command_approver, definition.command_key)
        me = workflow.info().workflow_id
        self._steps = [StepResult(name=s.name, agent=s.agent, workflow_id=f"{me}/{s.name}") for s in definition.steps]
        self._state = "running"
        try:
            for spec, step in zip(definition.steps, self._steps, strict=True):
                if spec.when is not None and not holds(spec.when, self._by_name()):
                    step.status = "skipped"
                    workflow.logger.info("pipeline step skipped", extra={"step": step.name})
                    continue
                await self._run_step(spec, step, request)
                if step.status == "failed" and spec.on_failure == "stop":
                    self._state = "failed"
                    raise PipelineError(
                        f"pipeline {self._name!r} stopped at step {step.name!r}: {step.error}",
                        self._result().model_dump(mode="json"),
                    )
        except asyncio.CancelledError:
            self._state = "cancelled"
            for step in self._steps:
                if step.status in ("running", "awaiting_approval"):
                    step.status = "cancelled"
            raise
        self._state = "completed"
        return self._result()

    async def _definition(self, request: PipelineRequest) -> PipelineDefinition:
        lookup = PipelineLookup(
            name=request.pipeline,
            definition=PipelineDefinition(steps=request.steps) if request.steps is not None else None,
        )
        return await steps.run_local(
            steps.PIPELINE,
            lookup,
            summary=f"pipeline / {request.pipeline or 'inline'}",
            failed=lambda failure: InvalidInputError(failure.message),
        )

    async def _run_step(self, spec: PipelineStep, step: StepResult, request: PipelineRequest) -> None:
        step.status = "running"
        # A plain JSON object: the child validates it, so a bad rendered input fails that step only.
        child_input = {
            "agent": spec.agent,
            "input": render(spec.input, request.input, self._by_name()),
            "requester": request.requester,
            "context": request.context,
        }
        workflow.logger.info("pipeline step started", extra={"step": step.name, "agent": spec.agent})
        try:
            result: AgentResult = await workflow.execute_child_workflow(
                "AgentWorkflow",
                child_input,
                id=step.workflow_id,
                result_type=AgentResult,
                static_summary=f"{self._name} / {step.name} ({spec.agent})",
            )
        except ChildWorkflowError as err:
            if workflow.cancellation_reason() is not None:
                # The pipeline was cancelled and took its running child with it: end as cancelled.
                raise asyncio.CancelledError from None
            cause = err.cause
            step.status = "failed"
            step.error = f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(cause)
            workflow.logger.warning("pipeline step failed", extra={"step": step.name, "error": step.error})
            return
        finally:
            self._pending.pop(step.workflow_id, None)
        step.status = "completed"
        step.output = result.output
        step.approvals = result.approvals
        step.tool_calls = result.tool_calls

    def _by_name(self) -> dict[str, StepResult]:
        return {step.name: step for step in self._steps}

    def _result(self) -> PipelineResult:
        done = [step for step in self._steps if step.status == "completed"]
        return PipelineResult(pipeline=self._name, output=done[-1].output if done else "", steps=self._steps)

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal(name="child_pending")
    def child_pending(self, raw: Any = None, *extra: Any) -> None:
        """A child run reports the approvals it now waits for (an empty list once decided)."""
        try:
            message = parse(ChildPending, received(raw, extra), "child_pending")
        except InvalidInputError as err:
            workflow.logger.warning("child_pending refused", extra={"reason": str(err)[:300]})
            return
        step = next((s for s in self._steps if s.workflow_id == message.workflow_id), None)
        if step is None or step.status not in ("running", "awaiting_approval"):
            workflow.logger.warning("child_pending refused", extra={"workflow": message.workflow_id})
            return
        self._pending[message.workflow_id] = message.pending
        step.status = "awaiting_approval" if message.pending else "running"

    @workflow.query(name="status")
    def status(self) -> PipelineStatus:
        """Every step's state and output so far, and the approvals its children wait for."""
        pending = [
            self._pending_entry(step, p) for step in self._steps for p in self._pending.get(step.workflow_id, [])
        ]
        state = "awaiting_approval" if pending and self._state == "running" else self._state
        current = next((s.name for s in self._steps if s.status in ("running", "awaiting_approval")), None)
        return PipelineStatus(state=state, pipeline=self._name, current=current, steps=self._steps, pending=pending)

    def _pending_entry(self, step: StepResult, reported: PendingApproval) -> PipelinePending:
        # Anyone can signal `child_pending`, so what it says is only a report. The hash is taken
        # from the arguments shown here, not from the report: a command printed beside forged
        # arguments is bound to them, and the child, which knows its real call, refuses it.
        shown = arguments_sha256(reported.arguments)
        commands: dict[str, Any]
        if reported.kind == "input" and reported.question is not None:
            sha = reported.question.question_sha256
            commands = {
                "approve_command": "",
                "kind": "input",
                "question": reported.question,
                "answer_command": answer_command(step.workflow_id, reported.call_id, sha, self._signer),
            }
        else:
            commands = {
                "approve_command": decision_command(step.workflow_id, reported.call_id, shown, "approve", self._signer),
                "reject_command": decision_command(step.workflow_id, reported.call_id, shown, "reject", self._signer),
            }
        return PipelinePending(
            step=step.name,
            workflow_id=step.workflow_id,
            call_id=reported.call_id,
            agent=reported.agent,
            server=reported.server,
            tool=reported.tool,
            arguments=reported.arguments,
            arguments_sha256=shown,
            **commands,
        )
