"""`AgentWorkflow`: run one declared agent durably; pause at gated tools until a person decides.

This module is the run loop, continue-as-new and the message handlers. What the handlers hand
on lives in modules of its own: judging decisions and answers (`judging.py`) under one
authority (`authority.py`) with one audit log (`audit.py`), shared by the approval gate
(`gate.py`) and the input desk (`input_requests.py`); webhook notices (`notices.py`); and the
conversation view (`conversation.py`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import FailureError

# Third-party packages are shared with the worker, not imported again into each sandbox; Airlock's
# own modules are loaded by the sandbox, so a replay checks them (see runtime/build.py).
with workflow.unsafe.imports_passed_through():
    from agents import RunConfig, Runner, RunState, ToolApprovalItem
    from agents.exceptions import AgentsException, MaxTurnsExceeded
    from pydantic import ValidationError

from workflows import carry, notices, steps
from workflows.arguments import parse_arguments
from workflows.audit import AuditLog
from workflows.authority import Authority
from workflows.budget import BudgetStop, Ledger
from workflows.conversation import Conversation
from workflows.decoding import cut, parse, received
from workflows.durable import build_agents
from workflows.durable_tools import ToolRuntime
from workflows.errors import (
    DOMAIN_ERRORS,
    ApprovalTimedOutError,
    BudgetExceededError,
    ForgedCheckpointError,
    InvalidInputError,
    ModelError,
    PayloadTooLargeError,
    ToolConflictError,
    ToolUnavailableError,
    UnknownAgentError,
)
from workflows.events import RunEvents, carried_log
from workflows.gate import ApprovalGate
from workflows.gate_metrics import GateMetrics
from workflows.identity import AuthorityRefusedError, Verifier
from workflows.input_requests import InputDesk
from workflows.judging import Judging, read_directory
from workflows.payloads import (
    AgentRequest,
    AgentResult,
    Answer,
    ApprovalConfig,
    ApprovalRecord,
    Approve,
    AuditEntry,
    CallDetails,
    Checkpoint,
    ChildPending,
    Directory,
    GivenAnswer,
    InFlightCall,
    InputQuestion,
    PendingApproval,
    PrepareRequest,
    Reject,
    Review,
    RunEventsPage,
    RunPlan,
    RunStateName,
    RunStatus,
    ToolPlan,
)

AIRLOCK_STATE = SearchAttributeKey.for_keyword("AirlockState")
AIRLOCK_AGENT = SearchAttributeKey.for_keyword("AirlockAgent")

# A call to a tool the agent does not have (or may not see) is the model's mistake: it hears so
# and may re-plan, instead of the SDK raising and the workflow task failing over and over.
RUN_CONFIG = RunConfig(
    tracing_disabled=True, trace_include_sensitive_data=False, tool_not_found_behavior="return_error_to_model"
)


@workflow.defn(name="AgentWorkflow", failure_exception_types=DOMAIN_ERRORS)
class AgentWorkflow:
    """Run one declared agent; pause at gated tools until the right people decide."""

    # The same parameters as `run` (Temporal requires it): a continued run's events are carried in
    # its input, and the stream must be registered here, before any message is handled.
    @workflow.init
    def __init__(self, raw: Any = None, *extra: Any) -> None:
        self._events = RunEvents(carried_log(raw))
        self._state: RunStateName = "starting"
        self._agent = ""
        self._plan: RunPlan | None = None
        self._tools: dict[tuple[str, str], ToolPlan] = {}
        self._ledger = Ledger()
        self._authority, self._audit, self._gate, self._inputs, self._judging = self._judge_by(None, None)
        self._gate_metrics = GateMetrics()
        # Questions of running calls waiting for a person, and a timed-out one that fails the run.
        self._asking = 0
        self._input_failure: ApprovalTimedOutError | None = None
        self._conversation = Conversation()
        self._in_flight: dict[str, InFlightCall] = {}

    # `Any`, a default and `*extra`: the converter decodes by these hints before `run` starts, and
    # a non-object input, none or several would fail the workflow task forever instead of failing
    # the run with InvalidInputError.
    @workflow.run
    async def run(self, raw: Any = None, *extra: Any) -> AgentResult:
        """Plan the run, drive the Agents SDK runner, and stop at every gated call."""
        try:
            request = parse(AgentRequest, received(raw, extra), "AgentWorkflow input")
        except InvalidInputError as err:
            self._ended(err)
            raise
        try:
            result = await self._run(request)
        except asyncio.CancelledError:
            self._set_state("cancelled")
            self._events.publish("failed", state="cancelled", error="CancelledError", text="the run was cancelled")
            self._events.release_subscribers()
            raise
        except (
            InvalidInputError,
            ModelError,
            ToolUnavailableError,
            UnknownAgentError,
            ForgedCheckpointError,
            PayloadTooLargeError,
        ) as err:
            self._set_state("failed")
            self._ended(err)
            raise
        except Exception as err:
            self._ended(err)
            raise
        self._events.publish("completed", state=self._state, agent=self._agent, text=result.output)
        self._events.release_subscribers()
        return result

    def _ended(self, err: Exception) -> None:
        """Tell subscribers how the run failed (the state it was left in, the error's type and message)."""
        self._events.publish(
            "failed", state=self._state, agent=self._agent or None, error=type(err).__name__, text=str(err)
        )
        self._events.release_subscribers()

    async def _run(self, request: AgentRequest) -> AgentResult:
        self._agent = request.agent
        checkpoint = request.checkpoint
        if checkpoint is not None and workflow.info().continued_run_id is None:
            # A checkpoint holds approvals; only a run of ours that continued as new may carry one.
            raise InvalidInputError("invalid AgentWorkflow input: checkpoint is set only by Airlock itself")
        # Runs begun before authority was checked at its source replay as they ran.
        current_authority = workflow.patched("current-authority")
        if checkpoint is not None and current_authority:
            await self._check_checkpoint_origin()
        plan = checkpoint.plan if checkpoint is not None else await self._prepare(request.agent)
        if checkpoint is not None and current_authority:
            # The checkpoint's directory may name a key removed since: decisions are judged by
            # the approvers file as it is now.
            plan = plan.model_copy(update={"directory": await self._current_directory()})
        self._use_plan(plan)
        _require_requester(plan, request.requester)
        self._authority, self._audit, self._gate, self._inputs, self._judging = self._judge_by(
            plan.directory,
            request.requester,
            checkpoint,
            # When the approvers file in use was read; runs from before this was tracked have none.
            directory_at=workflow.now() if current_authority else None,
        )
        self._gate_metrics = GateMetrics(checkpoint.gate if checkpoint is not None else ())
        if checkpoint is not None:
            self._ledger = Ledger(turns=checkpoint.turn, tool_calls=checkpoint.tool_calls, usage=checkpoint.usage)
        self._set_state("running", agent=request.agent)
        agents = build_agents(
            plan,
            ToolRuntime(
                workflow_id=workflow.info().workflow_id,
                gate=self._gate,
                ledger=self._ledger,
                on_outcome=self._on_outcome,
                checkpoint_due=lambda: self._history_is_long(plan),
                in_flight=self._in_flight,
                ask=self._ask,
                events=self._events,
            ),
        )
        root = agents[plan.root]
        spec = plan.agents[plan.root]
        next_input: str | RunState[Any] = request.first_message()
        if checkpoint is not None:
            next_input = await RunState.from_string(root, checkpoint.run_state)
        while True:
            try:
                result = await Runner.run(root, next_input, max_turns=spec.max_turns, run_config=RUN_CONFIG)
            except MaxTurnsExceeded:
                self._fail_budget(f"max_turns ({spec.max_turns}) exceeded")
            except (BudgetStop, AgentsException, ValidationError) as err:
                # The SDK wraps errors raised inside tools (UserError); the ledger knows why.
                if self._ledger.exceeded is not None:
                    self._fail_budget(self._ledger.exceeded)
                if self._input_failure is not None:
                    self._set_state("failed")
                    raise self._input_failure from None
                if isinstance(err, BudgetStop):
                    raise
                # What the SDK refuses (a duplicate call id, an item it cannot rebuild) is the
                # model's doing: a typed failure, not a workflow task failing on every retry.
                raise ModelError(f"the model's reply broke the run: {type(err).__name__}: {cut(err, 300)}") from None
            if not result.interruptions:
                break
            self._conversation.remember(result.to_input_list())
            state = result.to_state()
            gated = [item for item in result.interruptions if self._policy_of(item) != "auto"]
            for item in result.interruptions:
                if item not in gated:
                    state.approve(item)  # an auto call that paused only so the run can checkpoint
            if gated:
                await self._await_decisions(state, gated)
            if self._history_is_long(plan):
                # Subscribers go on with the next run, from where they were (workflows/events.py).
                self._events.release_subscribers()
                await workflow.wait_condition(workflow.all_handlers_finished)
                assert self._plan is not None
                workflow.continue_as_new(
                    request.model_copy(
                        update={
                            # Older tool outputs are cut so what is carried fits (workflows/carry.py).
                            "checkpoint": carry.fit_checkpoint(
                                Checkpoint(
                                    plan=self._plan,
                                    run_state=state.to_string(),
                                    gate=self._gate.records,
                                    audit=self._audit.entries,
                                    tool_calls=self._ledger.tool_calls,
                                    usage=self._ledger.usage,
                                    turn=self._ledger.turns,
                                    used_tokens=self._authority.used_tokens,
                                    events=self._events.carry(),
                                )
                            )
                        }
                    )
                )
            next_input = state
        self._set_state("completed")
        return AgentResult(
            output=str(result.final_output),
            approvals=self._gate.records,
            tool_calls=self._ledger.tool_calls,
            usage=self._ledger.usage,
        )

    def _use_plan(self, plan: RunPlan) -> None:
        self._plan = plan
        self._tools = {(agent, tool.name): tool for agent, spec in plan.agents.items() for tool in spec.tools}

    def _judge_by(
        self,
        directory: Directory | None,
        requester: str | None,
        checkpoint: Checkpoint | None = None,
        *,
        directory_at: datetime | None = None,
    ) -> tuple[Authority, AuditLog, ApprovalGate, InputDesk, Judging]:
        """The run's one authority and one audit log, the gate and the input desk they serve, and their judge.

        Built again once the plan is known; before that (messages that come first) nothing is
        pending, so everything is refused, and the approvers file is never read.
        """
        info = workflow.info()
        authority = Authority(
            Verifier(directory),
            workflow_id=info.workflow_id,
            requester=requester,
            namespace=info.namespace,
            run_id=info.run_id,
            used_tokens=checkpoint.used_tokens if checkpoint else None,
        )
        audit = AuditLog(checkpoint.audit if checkpoint else None, on_add=self._events.audited)
        gate = ApprovalGate(
            self._approval_config,
            self._schema_of,
            authority,
            audit,
            records=checkpoint.gate if checkpoint else None,
        )
        desk = InputDesk(authority, audit, config_of=self._approval_config)
        judging = Judging(
            authority,
            gate,
            desk,
            directory_at=directory_at,
            on_directory=self._take_directory if self._plan is not None else None,
        )
        return authority, audit, gate, desk, judging

    def _take_directory(self, directory: Directory | None) -> None:
        """Use the approvers file as it was just read (a continued run carries it in its plan)."""
        assert self._plan is not None
        self._use_plan(self._plan.model_copy(update={"directory": directory}))

    def _set_state(self, state: RunStateName, *, agent: str | None = None) -> None:
        # Approvers list runs by AirlockState: it must follow every change of state.
        self._state = state
        self._events.state(state, agent=agent)
        updates = [AIRLOCK_STATE.value_set(state)]
        if agent is not None:
            updates.append(AIRLOCK_AGENT.value_set(agent))
        workflow.upsert_search_attributes(updates)

    def _history_is_long(self, plan: RunPlan) -> bool:
        info = workflow.info()
        # Local activity markers are written only when the workflow task completes, so the
        # length Temporal reports can miss a long stretch of them: count them all on top.
        length = info.get_current_history_length() + self._ledger.local_steps
        return info.is_continue_as_new_suggested() or length >= plan.max_history_events

    async def _prepare(self, agent: str) -> RunPlan:
        return await steps.run_local(
            steps.PREPARE,
            PrepareRequest(agent=agent),
            summary=f"{agent} / prepare",
            keep=(UnknownAgentError, ToolConflictError, PayloadTooLargeError),
            failed=lambda failure: ToolUnavailableError(f"could not prepare agent {agent!r}: {failure.cause}"),
        )

    async def _current_directory(self) -> Directory | None:
        """The approvers file as it is now, for a continued run (fails the run if it cannot be read)."""
        return await read_directory()

    async def _check_checkpoint_origin(self) -> None:
        """Fail the run unless its checkpoint came from Airlock's own continue-as-new."""
        await steps.run_local(
            steps.CHECKPOINT_ORIGIN,
            None,
            summary="checkpoint origin",
            keep=(ForgedCheckpointError,),
            # Not proven is refused as well: the checkpoint holds approvals.
            failed=lambda failure: ForgedCheckpointError(
                f"the checkpoint's origin could not be checked: {cut(failure.message, 300)}"
            ),
        )

    def _policy_of(self, item: ToolApprovalItem) -> str:
        tool = self._tools.get((item.agent.name, item.name or ""))
        if tool is None:
            return "approve"
        # A policy on arguments may rule this call otherwise than the tool's plan (activities/rules.py).
        ruling = self._gate.rulings.get(item.call_id or "") if tool.rules else None
        return ruling.policy if ruling is not None else tool.policy

    async def _await_decisions(self, state: RunState[Any], interruptions: list[ToolApprovalItem]) -> None:
        assert self._plan is not None
        batch: list[ApprovalRecord] = []
        for item in interruptions:
            agent = item.agent.name
            tool = self._tools.get((agent, item.name or ""))
            if tool is None:
                state.reject(item, rejection_message=f"Error: agent {agent} has no tool {cut(item.name, 80)!r}.")
                continue
            arguments, problem = parse_arguments(item.arguments or "", tool.input_schema)
            try:
                if arguments is None:
                    # Nobody is asked to approve what cannot run: the model hears why instead.
                    raise AuthorityRefusedError(problem or "invalid arguments")
                record = self._gate.request(
                    call_id=item.call_id or "",
                    agent=agent,
                    server=tool.server,
                    tool=tool.name,
                    arguments=arguments,
                    now=workflow.now(),
                )
            except AuthorityRefusedError as err:
                state.reject(item, rejection_message=f"Error: {tool.name} was not called: {err}.")
                continue
            batch.append(record)
            workflow.logger.info(
                "approval requested",
                extra={"call_id": record.call_id, "agent": agent, "tool": tool.name, "server": tool.server},
            )
            notices.announce_call(self._plan, self._gate.as_pending(record))
        if not batch:
            return
        self._set_state("awaiting_approval")
        await self._report_pending()
        while any(record.decision is None for record in batch):
            seen = self._judging.decisions
            wake = self._gate.next_wakeup(workflow.now())
            timeout = max((wake - workflow.now()).total_seconds(), 0.001) if wake else None
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._judging.decisions != seen or bool(self._judging.waiting_decisions),  # type: ignore[misc]
                    timeout=timedelta(seconds=timeout) if timeout is not None else None,
                    timeout_summary="approval deadline",
                )
            except TimeoutError:
                pass
            if self._judging.waiting_decisions:
                await self._judging.recheck_decisions()
            for record in self._gate.escalate_due(workflow.now()):
                notices.announce_call(self._plan, self._gate.as_pending(record), escalated=True)
            self._expire_overdue()
            await self._report_pending()
        items = {item.call_id: item for item in interruptions}
        for record in batch:
            item = items[record.call_id]
            if record.decision == "approved":
                state.approve(item)
                continue
            decision = (record.decision or "rejected").replace("_", " ")
            who = f" by {record.decided_by}" if record.decided_by else ""
            state.reject(
                item,
                rejection_message=(
                    f"The call to {record.tool} was {decision}{who}: {record.reason or 'no reason given'}. "
                    "It was not executed."
                ),
            )
        self._set_state("running")

    async def _report_pending(self) -> None:
        # Every change to what waits passes here: requests, decisions, timeouts.
        self._gate_metrics.observe(self._gate.records)
        parent = workflow.info().parent
        if parent is None:
            return
        # A pipeline cannot query its children, so a child tells it what it waits for.
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "child_pending",
                ChildPending(workflow_id=workflow.info().workflow_id, pending=self._pending()),
            )
        except FailureError as err:
            workflow.logger.warning("could not tell the parent run", extra={"error": str(err)})

    def _expire_overdue(self) -> None:
        for record in self._gate.overdue(workflow.now()):
            self._gate.time_out(record, workflow.now())
            workflow.logger.info("approval timed out", extra={"call_id": record.call_id, "tool": record.tool})
            if self._approval_config(record.agent).on_timeout == "fail":
                self._set_state("failed")
                raise ApprovalTimedOutError(
                    f"no decision on {record.server}.{record.tool} (call {record.call_id}) before "
                    f"{record.deadline.isoformat() if record.deadline else 'the deadline'}"
                )

    async def _ask(
        self,
        call_id: str,
        agent: str,
        tool: ToolPlan,
        arguments: dict[str, Any],
        question: InputQuestion,
    ) -> GivenAnswer | None:
        """Wait, durably, for a person to answer one question a running call's server asked.

        The wait is in the workflow, not in the activity: a worker may die meanwhile, and the
        call is sent again with the answer once there is one. No answer before the agent's
        approval timeout is `cancel` (or, with `on_timeout = "fail"`, a failed run).
        """
        try:
            record = self._inputs.open(
                call_id=call_id,
                agent=agent,
                server=tool.server,
                tool=tool.name,
                arguments=arguments,
                question=question,
                now=workflow.now(),
                needed=self._judging.answers_needed(call_id),
            )
        except AuthorityRefusedError:
            return None
        workflow.logger.info(
            "input requested", extra={"call_id": call_id, "agent": agent, "tool": tool.name, "server": tool.server}
        )
        plan = self._plan
        assert plan is not None
        notices.announce_input(plan, self._inputs.as_pending(record), record)
        self._asking += 1
        self._set_state("awaiting_approval")
        await self._report_pending()
        deadline = record.call.deadline
        assert deadline is not None
        escalation = notices.input_escalation(plan, record)  # None once announced again, or if it never is
        while record.action is None:
            until = escalation or deadline
            try:
                await workflow.wait_condition(
                    lambda: record.action is not None or bool(self._judging.waiting_answers),
                    timeout=timedelta(seconds=max((until - workflow.now()).total_seconds(), 0.001)),
                    timeout_summary="input escalation" if escalation else "input deadline",
                )
            except TimeoutError:
                if escalation is not None:
                    # `escalate_to` people may answer from now on: they hear of it, as for a call.
                    escalation = None
                    record.call.escalated_at = workflow.now()
                    self._events.publish(
                        "input_escalated", call_id=call_id, agent=agent, server=tool.server, tool=tool.name
                    )
                    notices.announce_input(plan, self._inputs.as_pending(record), record, escalated=True)
                    continue
                self._inputs.time_out(record, workflow.now())
                if self._approval_config(agent).on_timeout == "fail":
                    self._input_failure = ApprovalTimedOutError(
                        f"no answer to {tool.server}.{tool.name}'s input request (call {call_id}) before "
                        f"{deadline.isoformat()}"
                    )
            else:
                if self._judging.waiting_answers:
                    await self._judging.recheck_answers()
        self._inputs.close(call_id)
        self._asking -= 1
        if self._asking == 0:
            self._set_state("running")
        await self._report_pending()
        if self._input_failure is not None:
            raise self._input_failure
        return record.given()

    def _on_outcome(self, call_id: str, outcome: Any) -> None:
        self._gate.record_outcome(call_id, outcome, workflow.now())

    def _approval_config(self, agent: str) -> ApprovalConfig:
        assert self._plan is not None
        return self._plan.agents[agent].approval

    def _schema_of(self, record: ApprovalRecord) -> dict[str, Any]:
        return self._tools[(record.agent, record.tool)].input_schema

    def _fail_budget(self, why: str) -> NoReturn:
        self._set_state("failed")
        partial = AgentResult(
            output="",
            approvals=self._gate.records,
            tool_calls=self._ledger.tool_calls,
            usage=self._ledger.usage,
        )
        raise BudgetExceededError(f"run stopped: {why}", partial.model_dump(mode="json"))

    # --- decisions ------------------------------------------------------------------------------
    # Any client can send no payload or several: without the default and `*extra` that would fail
    # the workflow task on every retry, so it is refused like any bad payload.

    @workflow.signal(name="approve")
    def approve(self, raw: Any = None, *extra: Any) -> None:
        """Approve (or edit and approve) one pending call; refused attempts are audited, never applied."""
        self._judging.decision_signal(Approve, received(raw, extra))

    @workflow.signal(name="reject")
    def reject(self, raw: Any = None, *extra: Any) -> None:
        """Reject one pending call; the model hears the reason and may re-plan."""
        self._judging.decision_signal(Reject, received(raw, extra))

    @workflow.update(name="review")
    async def review(self, raw: Any = None, *extra: Any) -> ApprovalRecord:
        """Decide one pending call and return the recorded decision."""
        return await self._judging.review(parse(Review, received(raw, extra), "review"))

    @review.validator
    def _validate_review(self, raw: Any = None, *extra: Any) -> None:
        self._judging.validate_review(parse(Review, received(raw, extra), "review"))

    # --- answers to input requests ---------------------------------------------------------------

    @workflow.signal(name="answer")
    def answer(self, raw: Any = None, *extra: Any) -> None:
        """Answer one input request; refused answers are audited, never applied."""
        self._judging.answer_signal(received(raw, extra))

    @workflow.update(name="answer")
    async def answer_update(self, raw: Any = None, *extra: Any) -> AuditEntry:
        """Answer one input request and return the recorded answer (its audit entry)."""
        return await self._judging.answer(parse(Answer, received(raw, extra), "answer"))

    @answer_update.validator
    def _validate_answer(self, raw: Any = None, *extra: Any) -> None:
        self._judging.validate_answer(parse(Answer, received(raw, extra), "answer"))

    # --- queries ---------------------------------------------------------------------------------

    @workflow.query(name="pending_approvals")
    def pending_approvals(self) -> list[PendingApproval]:
        """Calls waiting for a decision, and input requests (`kind` "input") waiting for an answer."""
        return self._pending()

    def _pending(self) -> list[PendingApproval]:
        return self._gate.pending() + self._inputs.pending()

    @workflow.query(name="status")
    def status(self) -> RunStatus:
        """Where the run is."""
        return RunStatus(
            state=self._state,
            agent=self._agent,
            turn=self._ledger.turns,
            tool_calls=self._ledger.tool_calls,
            pending=len(self._pending()),
            requester=self._authority.requester,
            in_flight=list(self._in_flight.values()),
        )

    @workflow.query(name="audit")
    def audit(self) -> list[AuditEntry]:
        """Every approval request, decision, refusal and outcome, in order."""
        return self._audit.entries

    @workflow.query(name="events_after")
    def events_after(self, after: int = 0) -> RunEventsPage:
        """The run's kept events from offset `after` on, for clients that cannot long-poll the stream."""
        return self._events.page(after if isinstance(after, int) else 0)

    @workflow.query(name="call_details")
    def call_details(self, call_id: str = "") -> CallDetails | None:
        """One pending call or input request: its tool, who may decide it, and the conversation."""
        record = self._gate.get(call_id)
        record = record if record is not None and record.decision is None else None
        asking = self._inputs.waiting(call_id) if record is None else None
        if asking is not None:
            record = asking.call
        if record is None:
            return None
        tool = self._tools.get((record.agent, record.tool))
        # A policy on arguments may name who decides this call (`approvers` on the record).
        config = self._gate.config_for(record)
        pending = self._inputs.as_pending(asking) if asking is not None else self._gate.as_pending(record)
        return CallDetails(
            pending=pending,
            description=tool.description if tool else "",
            input_schema=tool.input_schema if tool else {},
            deciders=self._authority.deciders(record, config, workflow.now()).listed(),
            allow_self_approval=config.allow_self_approval,
            conversation=self._conversation.items,
            conversation_omitted=self._conversation.omitted,
            pin_change=tool.pin_change if tool else None,
        )


def _require_requester(plan: RunPlan, requester: str | None) -> None:
    """A run of an agent that forbids self-approval must say who requested it.

    Without a requester the self-approval check would have nobody to compare with, so leaving
    the field out would switch the check off.
    """
    if requester is not None:
        return
    for name, spec in plan.agents.items():
        if not spec.approval.allow_self_approval and any(tool.policy == "approve" for tool in spec.tools):
            raise InvalidInputError(
                f"invalid AgentWorkflow input: agent {name!r} forbids self-approval "
                '(allow_self_approval = false), so the run must name its requester: add "requester"'
            )
