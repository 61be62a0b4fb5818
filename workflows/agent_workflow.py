"""`AgentWorkflow`: run one declared agent durably; pause at gated tools until a person decides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

# Third-party packages are shared with the worker, not imported again into each sandbox; Airlock's
# own modules are loaded by the sandbox, so a replay checks them (see runtime/build.py).
with workflow.unsafe.imports_passed_through():
    from agents import RunConfig, Runner, RunResult, RunState, ToolApprovalItem
    from agents.exceptions import AgentsException, MaxTurnsExceeded
    from pydantic import ValidationError

from workflows import carry, steps
from workflows.arguments import parse_arguments
from workflows.budget import BudgetStop, Ledger
from workflows.commands import YOU, Signer, answer_command, decision_command
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
    local_failure,
)
from workflows.gate import ApprovalGate, Verdict
from workflows.gate_metrics import GateMetrics
from workflows.identity import RefusedError, UnknownKeyError, Verifier, canonical_name
from workflows.input_requests import InputDesk, InputRecord
from workflows.payloads import (
    AgentRequest,
    AgentResult,
    Answer,
    ApprovalConfig,
    ApprovalNotice,
    ApprovalRecord,
    Approve,
    AuditEntry,
    CallDetails,
    Checkpoint,
    ChildPending,
    ConversationItem,
    Decision,
    Directory,
    GivenAnswer,
    InFlightCall,
    InputQuestion,
    PendingApproval,
    PrepareRequest,
    Reject,
    Review,
    RunPlan,
    RunStateName,
    RunStatus,
    ToolPlan,
)

# What an update's judge returns: a decision's verdict or an answer's.
J = TypeVar("J")

AIRLOCK_STATE = SearchAttributeKey.for_keyword("AirlockState")
AIRLOCK_AGENT = SearchAttributeKey.for_keyword("AirlockAgent")

PREPARE_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=500))
NOTIFY_RETRY = RetryPolicy(
    maximum_attempts=10, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
DIRECTORY_RETRY = RetryPolicy(maximum_attempts=3)
# A call to a tool the agent does not have (or may not see) is the model's mistake: it hears so
# and may re-plan, instead of the SDK raising and the workflow task failing over and over.
RUN_CONFIG = RunConfig(
    tracing_disabled=True, trace_include_sensitive_data=False, tool_not_found_behavior="return_error_to_model"
)
# Signed signals by a key the run does not know wait for one look at the current approvers
# file; more than this many at once are refused straight away.
MAX_RECHECKS = 10
REFRESH_INTERVAL = timedelta(minutes=1)
# A signed decision is judged with an approvers directory read at most this long ago; an older
# one is read again first (docs/identity.md states the bound).
DIRECTORY_MAX_AGE = timedelta(seconds=60)
# What `call_details` shows of the conversation: enough to judge a call, bounded for a query.
CONVERSATION_ITEMS = 20
CONVERSATION_ITEM_CHARS = 2_000


@workflow.defn(name="AgentWorkflow", failure_exception_types=DOMAIN_ERRORS)
class AgentWorkflow:
    """Run one declared agent; pause at gated tools until the right people decide."""

    def __init__(self) -> None:
        self._state: RunStateName = "starting"
        self._agent = ""
        self._plan: RunPlan | None = None
        self._tools: dict[tuple[str, str], ToolPlan] = {}
        self._ledger = Ledger()
        self._gate = self._new_gate(None, None)
        self._gate_metrics = GateMetrics()
        self._inputs = self._new_desk()
        # Questions of running calls waiting for a person, and a timed-out one that fails the run.
        self._asking = 0
        self._input_failure: ApprovalTimedOutError | None = None
        # Bumped by every applied decision, so the wait for approvals wakes on each.
        self._decisions = 0
        self._recheck: list[tuple[type[Decision], Any]] = []
        # Answer signals waiting for a fresh read of the approvers file, as decisions do.
        self._answer_recheck: list[Any] = []
        self._refreshed_at: datetime | None = None
        # When the approvers directory in use was read (None: a run from before it was tracked).
        self._directory_at: datetime | None = None
        self._conversation: list[ConversationItem] = []
        self._conversation_omitted = 0
        self._in_flight: dict[str, InFlightCall] = {}

    # `Any`, a default and `*extra`: the converter decodes by these hints before `run` starts, and
    # a non-object input, none or several would fail the workflow task forever instead of failing
    # the run with InvalidInputError.
    @workflow.run
    async def run(self, raw: Any = None, *extra: Any) -> AgentResult:
        """Plan the run, drive the Agents SDK runner, and stop at every gated call."""
        request = parse(AgentRequest, received(raw, extra), "AgentWorkflow input")
        try:
            return await self._run(request)
        except asyncio.CancelledError:
            self._set_state("cancelled")
            raise
        except (
            InvalidInputError,
            ModelError,
            ToolUnavailableError,
            UnknownAgentError,
            ForgedCheckpointError,
            PayloadTooLargeError,
        ):
            self._set_state("failed")
            raise

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
        if current_authority:
            self._directory_at = workflow.now()
        self._use_plan(plan)
        _require_requester(plan, request.requester)
        self._gate = self._new_gate(plan.directory, request.requester, checkpoint)
        self._gate_metrics = GateMetrics(checkpoint.gate if checkpoint is not None else ())
        self._inputs = self._new_desk()
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
            self._remember_conversation(result)
            state = result.to_state()
            gated = [item for item in result.interruptions if self._policy_of(item) != "auto"]
            for item in result.interruptions:
                if item not in gated:
                    state.approve(item)  # an auto call that paused only so the run can checkpoint
            if gated:
                await self._await_decisions(state, gated)
            if self._history_is_long(plan):
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
                                    audit=self._gate.audit,
                                    tool_calls=self._ledger.tool_calls,
                                    usage=self._ledger.usage,
                                    turn=self._ledger.turns,
                                    used_tokens=self._gate.used_tokens,
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

    def _new_gate(
        self,
        directory: Directory | None,
        requester: str | None,
        checkpoint: Checkpoint | None = None,
    ) -> ApprovalGate:
        return ApprovalGate(
            self._approval_config,
            self._schema_of,
            Verifier(directory),
            workflow_id=workflow.info().workflow_id,
            requester=requester,
            namespace=workflow.info().namespace,
            run_id=workflow.info().run_id,
            records=checkpoint.gate if checkpoint else None,
            audit=checkpoint.audit if checkpoint else None,
            used_tokens=checkpoint.used_tokens if checkpoint else None,
        )

    def _new_desk(self) -> InputDesk:
        return InputDesk(
            self._gate,
            workflow_id=workflow.info().workflow_id,
            timeout_of=lambda agent: self._approval_config(agent).timeout_seconds,
        )

    def _set_state(self, state: RunStateName, *, agent: str | None = None) -> None:
        # Approvers list runs by AirlockState: it must follow every change of state.
        self._state = state
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
        try:
            plan = await workflow.execute_local_activity(
                steps.prepare,
                PrepareRequest(agent=agent),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=PREPARE_RETRY,
                summary=f"{agent} / prepare",
            )
            return plan
        except (ActivityError, ApplicationError) as err:
            cause = local_failure(err)
            if UnknownAgentError.is_type_of(cause):
                raise UnknownAgentError(cause.message) from None
            if ToolConflictError.is_type_of(cause):
                raise ToolConflictError(cause.message) from None
            if PayloadTooLargeError.is_type_of(cause):
                raise PayloadTooLargeError(cause.message) from None
            raise ToolUnavailableError(f"could not prepare agent {agent!r}: {cause}") from None

    def _policy_of(self, item: ToolApprovalItem) -> str:
        tool = self._tools.get((item.agent.name, item.name or ""))
        return tool.policy if tool is not None else "approve"

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
                    raise RefusedError(problem or "invalid arguments")
                record = self._gate.request(
                    call_id=item.call_id or "",
                    agent=agent,
                    server=tool.server,
                    tool=tool.name,
                    arguments=arguments,
                    now=workflow.now(),
                )
            except RefusedError as err:
                state.reject(item, rejection_message=f"Error: {tool.name} was not called: {err}.")
                continue
            batch.append(record)
            workflow.logger.info(
                "approval requested",
                extra={"call_id": record.call_id, "agent": agent, "tool": tool.name, "server": tool.server},
            )
            self._notify(record)
        if not batch:
            return
        self._set_state("awaiting_approval")
        await self._report_pending()
        while any(record.decision is None for record in batch):
            seen = self._decisions
            wake = self._gate.next_wakeup(workflow.now())
            timeout = max((wake - workflow.now()).total_seconds(), 0.001) if wake else None
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._decisions != seen or bool(self._recheck),  # type: ignore[misc]
                    timeout=timedelta(seconds=timeout) if timeout is not None else None,
                    timeout_summary="approval deadline",
                )
            except TimeoutError:
                pass
            if self._recheck:
                await self._recheck_signals()
            for record in self._gate.escalate_due(workflow.now()):
                self._notify(record, escalated=True)
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

    def _notify(self, record: ApprovalRecord, *, escalated: bool = False) -> None:
        me = workflow.info().workflow_id
        sha, signer = record.arguments_sha256, self._signer()
        self._send_notice(
            ApprovalNotice(
                workflow_id=me,
                pending=self._gate.as_pending(record),
                escalated=escalated,
                approve_command=decision_command(me, record.call_id, sha, "approve", signer),
                reject_command=decision_command(me, record.call_id, sha, "reject", signer),
            )
        )

    def _signer(self) -> Signer:
        """Who the commands this run prints sign as: the worker's choice, recorded in the plan."""
        plan = self._plan
        if plan is None or plan.command_approver is None:
            return YOU
        return Signer(plan.command_approver, plan.command_key)

    def _notify_input(self, record: InputRecord, *, escalated: bool = False) -> None:
        assert self._plan is not None
        # Runs that asked before input requests were announced replay without the notice.
        if not self._plan.notify_approvals or not workflow.patched("notify-input-requests"):
            return
        me = workflow.info().workflow_id
        question = record.question.question_sha256
        self._send_notice(
            ApprovalNotice(
                workflow_id=me,
                pending=self._inputs.as_pending(record),
                escalated=escalated,
                approve_command="",
                answer_command=answer_command(me, record.call.call_id, question, self._signer()),
            )
        )

    def _input_escalation(self, record: InputRecord) -> datetime | None:
        """When an input request is announced again for `escalate_to` (None: it is not)."""
        assert self._plan is not None
        at = self._gate.escalation_at(record.call)
        deadline = record.call.deadline
        if at is None or (deadline is not None and at >= deadline) or not self._plan.notify_approvals:
            return None
        # The wait gains a timer at that time: runs that asked before it replay without one.
        return at if workflow.patched("announce-input-escalation") else None

    def _send_notice(self, notice: ApprovalNotice) -> None:
        """POST `notice` to the approval webhook, if one is configured; never waited for."""
        assert self._plan is not None
        if not self._plan.notify_approvals:
            return
        workflow.start_activity(
            steps.notify,
            notice,
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=NOTIFY_RETRY,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
            summary=f"{notice.pending.agent} / notify {notice.pending.tool}",
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
                needed=self._answers_needed(call_id),
            )
        except RefusedError:
            return None
        workflow.logger.info(
            "input requested", extra={"call_id": call_id, "agent": agent, "tool": tool.name, "server": tool.server}
        )
        self._notify_input(record)
        self._asking += 1
        self._set_state("awaiting_approval")
        await self._report_pending()
        deadline = record.call.deadline
        assert deadline is not None
        escalation = self._input_escalation(record)  # None once announced again, or if it never is
        while record.action is None:
            until = escalation or deadline
            try:
                await workflow.wait_condition(
                    lambda: record.action is not None or bool(self._answer_recheck),
                    timeout=timedelta(seconds=max((until - workflow.now()).total_seconds(), 0.001)),
                    timeout_summary="input escalation" if escalation else "input deadline",
                )
            except TimeoutError:
                if escalation is not None:
                    # `escalate_to` people may answer from now on: they hear of it, as for a call.
                    escalation = None
                    record.call.escalated_at = workflow.now()
                    self._notify_input(record, escalated=True)
                    continue
                self._inputs.time_out(record, workflow.now())
                if self._approval_config(agent).on_timeout == "fail":
                    self._input_failure = ApprovalTimedOutError(
                        f"no answer to {tool.server}.{tool.name}'s input request (call {call_id}) before "
                        f"{deadline.isoformat()}"
                    )
            else:
                if self._answer_recheck:
                    await self._recheck_answers()
        self._inputs.close(call_id)
        self._asking -= 1
        if self._asking == 0:
            self._set_state("running")
        await self._report_pending()
        if self._input_failure is not None:
            raise self._input_failure
        return record.given()

    def _answers_needed(self, call_id: str) -> int:
        """How many people must give the same answer: a gated call's quorum, one for an ungated call.

        An answer steers the call as much as its approval did (where the money goes), so it takes
        as many people as the approval took.
        """
        needed = next((r.approvals_needed for r in self._gate.records if r.call_id == call_id), 1)
        # Runs that asked before answers took the call's quorum replay with one answer.
        return needed if needed > 1 and workflow.patched("input-quorum") else 1

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

    # --- decisions -------------------------------------------------------------------------------

    @workflow.signal(name="approve")
    def approve(self, raw: Any = None, *extra: Any) -> None:
        """Approve (or edit and approve) one pending call; refused attempts are audited, never applied."""
        # Any client can send no payload or several; without the default and `*extra` that
        # would fail the workflow task on every retry, so it is refused like any bad payload.
        self._signal(Approve, received(raw, extra))

    @workflow.signal(name="reject")
    def reject(self, raw: Any = None, *extra: Any) -> None:
        """Reject one pending call; the model hears the reason and may re-plan."""
        self._signal(Reject, received(raw, extra))

    def _signal(self, model: type[Decision], value: Any, *, rechecked: bool = False) -> None:
        now = workflow.now()
        if not rechecked and self._directory_stale():
            # Judged only with a directory read in the last DIRECTORY_MAX_AGE: a removed key or
            # person stops counting within that bound.
            if len(self._recheck) >= MAX_RECHECKS:
                self._refused(value, "too many decisions wait for the approvers file to be read; send it again", now)
            else:
                self._recheck.append((model, value))
            return
        try:
            verdict = self._gate.judge(parse(model, value, f"{model.__name__.lower()} signal"), now)
        except UnknownKeyError as err:
            if rechecked or not self._may_refresh() or len(self._recheck) >= MAX_RECHECKS:
                self._refused(value, str(err), now)
            else:
                self._recheck.append((model, value))
            return
        except InvalidInputError as err:
            self._refused(value, err.message, now)
            return
        except RefusedError as err:
            self._refused(value, str(err), now)
            return
        self._apply(verdict, now)

    async def _recheck_signals(self) -> None:
        waiting, self._recheck = self._recheck, []
        await self._refresh_directory()
        for model, value in waiting:
            self._signal(model, value, rechecked=True)

    @workflow.update(name="review")
    async def review(self, raw: Any = None, *extra: Any) -> ApprovalRecord:
        """Decide one pending call and return the recorded decision."""
        message = parse(Review, received(raw, extra), "review")
        verdict = await self._judged_update(lambda: self._gate.judge(message, workflow.now()), message)
        return self._apply(verdict, workflow.now())

    @review.validator
    def _validate_review(self, raw: Any = None, *extra: Any) -> None:
        message = parse(Review, received(raw, extra), "review")
        self._validate_update(lambda: self._gate.judge(message, workflow.now()), message)

    async def _judged_update(self, judge: Callable[[], J], message: Review | Answer) -> J:
        """Judge an update in its handler; an unknown key gets one fresh look at the approvers file."""
        if self._directory_stale():
            await self._refresh_directory()
        try:
            try:
                return judge()
            except UnknownKeyError:
                # The validator let it through once: the approvers file may have a key added since.
                await self._refresh_directory()
                return judge()
        except RefusedError as err:
            # A refusal after the look, or the state changed since the validator (another came first).
            self._refused(message.model_dump(), str(err), workflow.now())
            raise InvalidInputError(f"refused: {err}") from None

    def _validate_update(self, judge: Callable[[], object], message: Review | Answer) -> None:
        """Refuse an update before it enters history: a flood of refusals costs the run nothing.

        The refusal is told to the sender and logged on the worker. A key the run does not know
        passes once a minute, so that the handler can read the approvers file again.
        """
        try:
            judge()
        except UnknownKeyError as err:
            if not self._may_refresh():
                self._log_refused(message.call_id, message.approver, str(err))
                raise InvalidInputError(f"refused: {err}") from None
        except RefusedError as err:
            self._log_refused(message.call_id, message.approver, str(err))
            raise InvalidInputError(f"refused: {err}") from None

    def _may_refresh(self) -> bool:
        # At most one look at the approvers file a minute: signatures by made-up keys must not
        # turn into a stream of activities, nor use up the look a real key rotation needs.
        return self._refreshed_at is None or workflow.now() - self._refreshed_at >= REFRESH_INTERVAL

    async def _refresh_directory(self) -> None:
        """Take the approvers file as it is now: a key may have been added, or removed, since."""
        if not (self._may_refresh() or self._directory_stale()) or self._plan is None:
            return
        self._refreshed_at = workflow.now()
        try:
            directory = await _read_directory()
        except (ActivityError, ApplicationError) as err:
            # The signatures wait for nothing else: they are refused with the directory we have.
            workflow.logger.warning("could not read the approvers file", extra={"error": cut(err, 300)})
            return
        if self._directory_at is not None:
            self._directory_at = workflow.now()
        self._use_plan(self._plan.model_copy(update={"directory": directory}))
        self._gate.verifier = Verifier(directory)

    def _directory_stale(self) -> bool:
        """Whether signed decisions wait for a fresh read of the approvers file before being judged."""
        return (
            self._directory_at is not None
            and self._gate.verifier.signed
            and workflow.now() - self._directory_at >= DIRECTORY_MAX_AGE
        )

    async def _current_directory(self) -> Directory | None:
        """The approvers file as it is now, for a continued run (fails the run if it cannot be read)."""
        try:
            return await _read_directory()
        except (ActivityError, ApplicationError) as err:
            raise ToolUnavailableError(f"could not read the approvers file: {local_failure(err)}") from None

    async def _check_checkpoint_origin(self) -> None:
        """Fail the run unless its checkpoint came from Airlock's own continue-as-new."""
        try:
            await workflow.execute_local_activity(
                steps.checkpoint_origin,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=DIRECTORY_RETRY,
                summary="checkpoint origin",
            )
        except (ActivityError, ApplicationError) as err:
            cause = local_failure(err)
            why = cause.message if isinstance(cause, ApplicationError) else str(cause)
            if ForgedCheckpointError.is_type_of(cause):
                raise ForgedCheckpointError(why) from None
            # Not proven is refused as well: the checkpoint holds approvals.
            raise ForgedCheckpointError(f"the checkpoint's origin could not be checked: {cut(why, 300)}") from None

    def _apply(self, verdict: Verdict, now: datetime) -> ApprovalRecord:
        record = self._gate.apply(verdict, now)
        self._decisions += 1
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

    def _refused(self, value: Any, reason: str, now: datetime) -> None:
        call_id = value.get("call_id") if isinstance(value, dict) else None
        actor = value.get("approver") if isinstance(value, dict) else None
        self._gate.refuse(cut(call_id or ""), actor=cut(actor or "?"), reason=reason, now=now)
        self._log_refused(call_id, actor, reason)

    @staticmethod
    def _log_refused(call_id: Any, approver: Any, reason: str) -> None:
        workflow.logger.warning(
            "decision refused",
            extra={"call_id": cut(call_id or ""), "approver": cut(approver or "?"), "reason": cut(reason, 300)},
        )

    # --- answers to input requests -----------------------------------------------------------

    @workflow.signal(name="answer")
    def answer(self, raw: Any = None, *extra: Any) -> None:
        """Answer one input request; refused answers are audited, never applied."""
        self._answer_signal(received(raw, extra))

    def _answer_signal(self, value: Any, *, rechecked: bool = False) -> None:
        now = workflow.now()
        # Judged only with a directory read in the last DIRECTORY_MAX_AGE, as a decision is: a
        # removed key or person stops counting within that bound. Runs from before replay without.
        if not rechecked and self._directory_stale() and workflow.patched("recheck-stale-answers"):
            if len(self._answer_recheck) >= MAX_RECHECKS:
                self._refused(value, "too many answers wait for the approvers file to be read; send it again", now)
            else:
                self._answer_recheck.append(value)
            return
        try:
            verdict = self._inputs.judge(parse(Answer, value, "answer signal"), now)
        except InvalidInputError as err:
            self._refused(value, err.message, now)
            return
        except RefusedError as err:
            self._refused(value, str(err), now)
            return
        self._inputs.apply(verdict, now)

    async def _recheck_answers(self) -> None:
        waiting, self._answer_recheck = self._answer_recheck, []
        await self._refresh_directory()
        for value in waiting:
            self._answer_signal(value, rechecked=True)

    @workflow.update(name="answer")
    async def answer_update(self, raw: Any = None, *extra: Any) -> AuditEntry:
        """Answer one input request and return the recorded answer (its audit entry)."""
        message = parse(Answer, received(raw, extra), "answer")
        verdict = await self._judged_update(lambda: self._inputs.judge(message, workflow.now()), message)
        return self._inputs.apply(verdict, workflow.now())

    @answer_update.validator
    def _validate_answer(self, raw: Any = None, *extra: Any) -> None:
        message = parse(Answer, received(raw, extra), "answer")
        self._validate_update(lambda: self._inputs.judge(message, workflow.now()), message)

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
            requester=self._gate.requester,
            in_flight=list(self._in_flight.values()),
        )

    @workflow.query(name="audit")
    def audit(self) -> list[AuditEntry]:
        """Every approval request, decision, refusal and outcome, in order."""
        return self._gate.audit

    @workflow.query(name="call_details")
    def call_details(self, call_id: str = "") -> CallDetails | None:
        """One pending call or input request: its tool, who may decide it, and the conversation."""
        record = next((r for r in self._gate.records if r.call_id == call_id and r.decision is None), None)
        asking = self._inputs.waiting(call_id) if record is None else None
        if asking is not None:
            record = asking.call
        if record is None:
            return None
        tool = self._tools.get((record.agent, record.tool))
        config = self._approval_config(record.agent)
        pending = self._inputs.as_pending(asking) if asking is not None else self._gate.as_pending(record)
        deciders: list[str] | None = None
        if config.approvers:
            people = self._gate.verifier.members(config.approvers)
            escalation = self._gate.escalation_at(record)
            if record.escalated_at is not None or (escalation is not None and workflow.now() >= escalation):
                people |= self._gate.verifier.members(config.escalate_to)
            if not config.allow_self_approval and pending.requester is not None:
                people.discard(canonical_name(pending.requester))
            deciders = sorted(people)
        return CallDetails(
            pending=pending,
            description=tool.description if tool else "",
            input_schema=tool.input_schema if tool else {},
            deciders=deciders,
            allow_self_approval=config.allow_self_approval,
            conversation=self._conversation,
            conversation_omitted=self._conversation_omitted,
        )

    def _remember_conversation(self, result: RunResult) -> None:
        # Kept only in memory (never in history): a replay rebuilds it from the same results.
        items = result.to_input_list()
        recent = items[-CONVERSATION_ITEMS:]
        self._conversation = [_conversation_item(item) for item in recent]
        self._conversation_omitted = len(items) - len(recent)


async def _read_directory() -> Directory | None:
    """The approvers file as the worker reads it now (one local step; its failure is the caller's to judge)."""
    return await workflow.execute_local_activity(
        steps.current_approvers,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=DIRECTORY_RETRY,
        summary="approvers file",
    )


def _conversation_item(item: Any) -> ConversationItem:
    """A conversation item as text an approver can read, cut to `CONVERSATION_ITEM_CHARS`."""
    if not isinstance(item, dict):
        return ConversationItem(kind="item", text=cut(item, CONVERSATION_ITEM_CHARS))
    kind = str(item.get("type") or "message")
    role = item.get("role")
    if kind == "function_call":
        text = f"{item.get('name')}({item.get('arguments') or ''})"
    elif kind == "function_call_output":
        text = str(item.get("output"))
    else:
        content = item.get("content")
        if isinstance(content, list):
            text = "\n".join(
                str(part.get("text") or part.get("refusal") or "") for part in content if isinstance(part, dict)
            )
        else:
            text = str(content if content is not None else item)
    return ConversationItem(
        kind=kind, role=str(role) if role is not None else None, text=cut(text, CONVERSATION_ITEM_CHARS)
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
