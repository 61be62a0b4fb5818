"""`AgentWorkflow`: run one declared agent durably; pause at gated tools until a person decides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from agents import RunConfig, Runner, RunState, ToolApprovalItem
    from agents.exceptions import AgentsException, MaxTurnsExceeded
    from pydantic import BaseModel, ValidationError

    from workflows.approvals import ApprovalGate, as_pending, decision_command
    from workflows.durable import (
        BudgetStop,
        Ledger,
        ToolRuntime,
        build_agents,
        local_failure,
        parse_arguments,
    )
    from workflows.errors import (
        DOMAIN_ERRORS,
        ApprovalTimedOutError,
        BudgetExceededError,
        InvalidInputError,
        ToolConflictError,
        ToolUnavailableError,
        UnknownAgentError,
    )
    from workflows.payloads import (
        AgentRequest,
        AgentResult,
        ApprovalConfig,
        ApprovalNotice,
        ApprovalRecord,
        Approve,
        AuditEntry,
        Checkpoint,
        ChildPending,
        PendingApproval,
        PrepareRequest,
        Reject,
        Review,
        RunPlan,
        RunStateName,
        RunStatus,
        ToolPlan,
    )

AIRLOCK_STATE = SearchAttributeKey.for_keyword("AirlockState")
AIRLOCK_AGENT = SearchAttributeKey.for_keyword("AirlockAgent")

PREPARE_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=500))
NOTIFY_RETRY = RetryPolicy(maximum_attempts=10, initial_interval=timedelta(seconds=1),
                           maximum_interval=timedelta(minutes=1))
# A call to a tool the agent does not have (or may not see) is the model's mistake: it hears so
# and may re-plan, instead of the SDK raising and the workflow task failing over and over.
RUN_CONFIG = RunConfig(tracing_disabled=True, trace_include_sensitive_data=False,
                       tool_not_found_behavior="return_error_to_model")


def parse(model: type[BaseModel], raw: Any, what: str) -> Any:
    """Validate a JSON payload, turning a mismatch into a clear, non-retryable failure."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in issue['loc']) or '(top level)'}: {issue['msg']}{_got(issue)}"
            for issue in err.errors()[:5]
        )
        raise InvalidInputError(f"invalid {what}: {problems}") from None


def _got(issue: Any) -> str:
    # The offending value, briefly: enough to find the mistake, never a flood in the history.
    if issue["type"] in ("missing", "extra_forbidden") or isinstance(issue.get("input"), dict | list):
        return ""
    shown = repr(issue.get("input"))
    return f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"


@workflow.defn(name="AgentWorkflow", failure_exception_types=DOMAIN_ERRORS)
class AgentWorkflow:
    """Run one declared agent; pause at gated tools until a person decides."""

    def __init__(self) -> None:
        self._state: RunStateName = "starting"
        self._agent = ""
        self._requester: str | None = None
        self._plan: RunPlan | None = None
        self._ledger = Ledger()
        self._gate = ApprovalGate(self._approval_config)

    # `Any`, a default and `*extra`: the converter decodes by these hints before `run` starts, and
    # a non-object input, none or several would fail the workflow task forever instead of failing
    # the run with InvalidInputError.
    @workflow.run
    async def run(self, raw: Any = None, *extra: Any) -> AgentResult:
        """Plan the run, drive the Agents SDK runner, and stop at every gated call."""
        request: AgentRequest = parse(AgentRequest, [raw, *extra] if extra else raw, "AgentWorkflow input")
        try:
            return await self._run(request)
        except asyncio.CancelledError:
            # Approvers list runs by AirlockState: a cancelled run must stop showing as waiting.
            self._state = "cancelled"
            workflow.upsert_search_attributes([AIRLOCK_STATE.value_set("cancelled")])
            raise

    async def _run(self, request: AgentRequest) -> AgentResult:
        self._agent = request.agent
        self._requester = request.requester
        checkpoint = request.checkpoint
        if checkpoint is not None and workflow.info().continued_run_id is None:
            # A checkpoint holds approvals; only a run of ours that continued as new may carry one.
            raise InvalidInputError("invalid AgentWorkflow input: checkpoint is set only by Airlock itself")
        if checkpoint is not None:
            plan = checkpoint.plan
            self._gate = ApprovalGate(self._approval_config, checkpoint.gate, checkpoint.audit)
            self._ledger = Ledger(turns=checkpoint.turn, tool_calls=checkpoint.tool_calls, usage=checkpoint.usage)
        else:
            plan = await self._prepare(request.agent)
        self._plan = plan
        workflow.upsert_search_attributes([AIRLOCK_AGENT.value_set(request.agent), AIRLOCK_STATE.value_set("running")])
        self._state = "running"
        agents = build_agents(plan, ToolRuntime(
            workflow_id=workflow.info().workflow_id, gate=self._gate, ledger=self._ledger,
            on_outcome=self._on_outcome, checkpoint_due=lambda: self._history_is_long(plan),
        ))
        root = agents[plan.root]
        spec = plan.agents[plan.root]
        next_input: str | RunState[Any] = request.input
        if checkpoint is not None:
            next_input = await RunState.from_string(root, checkpoint.run_state)
        while True:
            try:
                result = await Runner.run(root, next_input, max_turns=spec.max_turns, run_config=RUN_CONFIG)
            except MaxTurnsExceeded:
                self._fail_budget(f"max_turns ({spec.max_turns}) exceeded")
            except (BudgetStop, AgentsException):
                # The SDK wraps errors raised inside tools (UserError); the ledger knows why.
                if self._ledger.exceeded is None:
                    raise
                self._fail_budget(self._ledger.exceeded)
            if not result.interruptions:
                break
            state = result.to_state()
            gated = [item for item in result.interruptions if self._tool_of(item).policy == "approve"]
            for item in result.interruptions:
                if item not in gated:
                    state.approve(item)  # an auto call that paused only so the run can checkpoint
            if gated:
                await self._await_decisions(state, gated)
            if self._history_is_long(plan):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(request.model_copy(update={"checkpoint": Checkpoint(
                    plan=plan, run_state=state.to_string(), gate=self._gate.records, audit=self._gate.audit,
                    tool_calls=self._ledger.tool_calls, usage=self._ledger.usage, turn=self._ledger.turns,
                )}))
            next_input = state
        self._state = "completed"
        workflow.upsert_search_attributes([AIRLOCK_STATE.value_set("completed")])
        return AgentResult(
            output=str(result.final_output), approvals=self._gate.records,
            tool_calls=self._ledger.tool_calls, usage=self._ledger.usage,
        )

    def _history_is_long(self, plan: RunPlan) -> bool:
        info = workflow.info()
        # Local activity markers are written only when the workflow task completes, so the
        # length Temporal reports can miss a long stretch of them: count them all on top.
        length = info.get_current_history_length() + self._ledger.local_steps
        return info.is_continue_as_new_suggested() or length >= plan.max_history_events

    async def _prepare(self, agent: str) -> RunPlan:
        try:
            plan: RunPlan = await workflow.execute_local_activity(
                "airlock.prepare", PrepareRequest(agent=agent), result_type=RunPlan,
                start_to_close_timeout=timedelta(seconds=60), retry_policy=PREPARE_RETRY,
                summary=f"{agent} / prepare",
            )
            return plan
        except (ActivityError, ApplicationError) as err:
            cause = local_failure(err)
            if isinstance(cause, ApplicationError) and cause.type == "UnknownAgentError":
                raise UnknownAgentError(cause.message) from None
            if isinstance(cause, ApplicationError) and cause.type == "ToolConflictError":
                raise ToolConflictError(cause.message) from None
            raise ToolUnavailableError(f"could not prepare agent {agent!r}: {cause}") from None

    def _tool_of(self, item: ToolApprovalItem) -> ToolPlan:
        assert self._plan is not None
        return next(t for t in self._plan.agents[item.agent.name].tools if t.name == item.name)

    async def _await_decisions(self, state: RunState[Any], interruptions: list[ToolApprovalItem]) -> None:
        assert self._plan is not None
        batch: list[tuple[ToolApprovalItem, ApprovalRecord]] = []
        for item in interruptions:
            agent = item.agent.name
            tool = self._tool_of(item)
            arguments, problem = parse_arguments(item.arguments or "", tool.input_schema)
            if arguments is None:
                # The SDK asks for approval of arguments it cannot parse; nobody is asked to
                # approve what cannot run: the model hears why instead.
                state.reject(item, rejection_message=f"Error: {tool.name} was not called: {problem}.")
                continue
            record = self._gate.request(
                call_id=item.call_id or "", agent=agent, server=tool.server, tool=tool.name,
                arguments=arguments, now=workflow.now(),
            )
            batch.append((item, record))
            workflow.logger.info("approval requested", extra={
                "call_id": record.call_id, "agent": agent, "tool": tool.name, "server": tool.server})
            if self._plan.notify_approvals:
                self._notify(record)
        if not batch:
            return
        self._state = "awaiting_approval"
        workflow.upsert_search_attributes([AIRLOCK_STATE.value_set("awaiting_approval")])
        await self._report_pending()

        def undecided() -> int:
            return sum(record.decision is None for _, record in batch)

        def fewer_than(count: int) -> Callable[[], bool]:
            return lambda: undecided() < count

        while undecided():
            deadline = self._gate.next_deadline()
            timeout = max((deadline - workflow.now()).total_seconds(), 0.001) if deadline else None
            try:
                await workflow.wait_condition(
                    fewer_than(undecided()),
                    timeout=timedelta(seconds=timeout) if timeout is not None else None,
                    timeout_summary="approval deadline",
                )
            except TimeoutError:
                self._expire_overdue()
            await self._report_pending()
        for item, record in batch:
            if record.decision == "approved":
                state.approve(item)
            else:
                decision = (record.decision or "rejected").replace("_", " ")
                reason = record.reason or "no reason given"
                who = f" by {record.decided_by}" if record.decided_by else ""
                state.reject(item, rejection_message=(
                    f"The call to {record.tool} was {decision}{who}: {reason}. "
                    "It was not executed."))
        self._state = "running"
        workflow.upsert_search_attributes([AIRLOCK_STATE.value_set("running")])

    async def _report_pending(self) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        # A pipeline cannot query its children, so a child tells it what it waits for.
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "child_pending", ChildPending(workflow_id=workflow.info().workflow_id, pending=self._gate.pending()),
            )
        except FailureError as err:
            workflow.logger.warning("could not tell the parent run", extra={"error": str(err)})

    def _expire_overdue(self) -> None:
        for record in self._gate.overdue(workflow.now()):
            self._gate.time_out(record.call_id, workflow.now())
            workflow.logger.info("approval timed out", extra={"call_id": record.call_id, "tool": record.tool})
            if self._approval_config(record.agent).on_timeout == "fail":
                self._mark_failed()
                raise ApprovalTimedOutError(
                    f"no decision on {record.server}.{record.tool} (call {record.call_id}) before "
                    f"{record.deadline.isoformat() if record.deadline else 'the deadline'}"
                )

    def _notify(self, record: ApprovalRecord) -> None:
        workflow.start_activity(
            "airlock.notify",
            ApprovalNotice(workflow_id=workflow.info().workflow_id, pending=as_pending(record),
                           approve_command=decision_command(workflow.info().workflow_id, record.call_id, "approve")),
            start_to_close_timeout=timedelta(seconds=15), retry_policy=NOTIFY_RETRY,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
            summary=f"{record.agent} / notify {record.tool}",
        )

    def _on_outcome(self, call_id: str, outcome: str) -> None:
        self._gate.record_outcome(call_id, outcome, workflow.now())  # type: ignore[arg-type]

    def _approval_config(self, agent: str) -> ApprovalConfig:
        assert self._plan is not None
        return self._plan.agents[agent].approval

    def _mark_failed(self) -> None:
        # Approvers list runs by AirlockState: a failed run must stop showing as waiting.
        self._state = "failed"
        workflow.upsert_search_attributes([AIRLOCK_STATE.value_set("failed")])

    def _fail_budget(self, why: str) -> None:
        self._mark_failed()
        partial = AgentResult(
            output="", approvals=self._gate.records, tool_calls=self._ledger.tool_calls,
            usage=self._ledger.usage,
        )
        raise BudgetExceededError(f"run stopped: {why}", partial.model_dump(mode="json"))

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal(name="approve")
    def approve(self, raw: Any = None, *extra: Any) -> None:
        """Approve one pending call; refused attempts are logged and audited, never applied."""
        # Any client can send no payload or several; without the default and `*extra` that
        # would fail the workflow task on every retry, so it is refused like any bad payload.
        self._decide_from_signal([raw, *extra] if extra else raw, Approve, approved=True)

    @workflow.signal(name="reject")
    def reject(self, raw: Any = None, *extra: Any) -> None:
        """Reject one pending call; the model hears the reason and may re-plan."""
        self._decide_from_signal([raw, *extra] if extra else raw, Reject, approved=False)

    def _decide_from_signal(self, raw: Any, model: type[Approve] | type[Reject], *, approved: bool) -> None:
        now = workflow.now()
        try:
            message = model.model_validate(raw)
        except ValidationError as err:
            call_id = raw.get("call_id") if isinstance(raw, dict) else None
            actor = raw.get("approver") if isinstance(raw, dict) else None
            why = f"malformed payload: {err.errors()[0]['msg']}"
            self._gate.refuse(str(call_id or ""), actor=str(actor or "?"), reason=why, now=now)
            workflow.logger.warning("approval refused", extra={"call_id": call_id, "reason": why})
            return
        refusal = self._gate.refusal(message.call_id, message.approver, self._requester)
        if refusal is not None:
            self._gate.refuse(message.call_id, actor=message.approver, reason=refusal, now=now)
            workflow.logger.warning("approval refused", extra={
                "call_id": message.call_id, "approver": message.approver, "reason": refusal})
            return
        reason = message.comment if isinstance(message, Approve) else message.reason
        self._gate.decide(message.call_id, approved=approved, approver=message.approver, reason=reason, now=now)
        workflow.logger.info("approval decided", extra={
            "call_id": message.call_id, "approver": message.approver, "approved": approved})

    @workflow.update(name="review")
    def review(self, raw: dict[str, Any]) -> ApprovalRecord:
        """Decide one pending call and return the recorded decision."""
        message: Review = parse(Review, raw, "review")
        record = self._gate.decide(
            message.call_id, approved=message.decision == "approve", approver=message.approver,
            reason=message.reason, now=workflow.now(),
        )
        workflow.logger.info("approval decided", extra={
            "call_id": message.call_id, "approver": message.approver, "decision": message.decision})
        return record

    @review.validator
    def _validate_review(self, raw: dict[str, Any]) -> None:
        message: Review = parse(Review, raw, "review")
        refusal = self._gate.refusal(message.call_id, message.approver, self._requester)
        if refusal is not None:
            workflow.logger.warning("review refused", extra={
                "call_id": message.call_id, "approver": message.approver, "reason": refusal})
            raise InvalidInputError(f"review refused: {refusal}")

    @workflow.query(name="pending_approvals")
    def pending_approvals(self) -> list[PendingApproval]:
        """Calls waiting for a decision."""
        return self._gate.pending()

    @workflow.query(name="status")
    def status(self) -> RunStatus:
        """Where the run is."""
        return RunStatus(
            state=self._state, agent=self._agent, turn=self._ledger.turns,
            tool_calls=self._ledger.tool_calls, pending=len(self._gate.pending()),
        )

    @workflow.query(name="audit")
    def audit(self) -> list[AuditEntry]:
        """Every approval request, decision, refusal and outcome, in order."""
        return self._gate.audit

