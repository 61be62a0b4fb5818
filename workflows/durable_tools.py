"""Agents SDK function tools whose calls are activities, each released by the gate when gated.

Runs inside the workflow: no I/O, clock, randomness or environment (the banned-API lint checks).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agents import FunctionTool, RunContextWrapper, ToolOutputImage, ToolOutputText
from agents.tool_context import ToolContext
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import steps
from workflows.arguments import parse_arguments, schema_errors
from workflows.budget import BudgetStop, Ledger
from workflows.errors import ToolNotSentError, UnauthorizedCallError
from workflows.events import RunEvents
from workflows.gate import ApprovalGate
from workflows.identity import AuthorityRefusedError
from workflows.limits import READ_REPLY_OVERHEAD_BYTES
from workflows.payloads import (
    AgentPlan,
    GivenAnswer,
    InFlightCall,
    InputQuestion,
    RuleRequest,
    Ruling,
    ToolCall,
    ToolPlan,
    ToolReply,
)
from workflows.steps import FailedStep

NOT_SENT_RESENDS = 3

# Asks people one question a call's server sent; None when the call may not ask any more.
Ask = Callable[[str, str, ToolPlan, dict[str, Any], InputQuestion], Awaitable[GivenAnswer | None]]


@dataclass
class ToolRuntime:
    """What a tool needs from its run: identity, the gate, the ledger and when to checkpoint."""

    workflow_id: str
    gate: ApprovalGate
    ledger: Ledger
    on_outcome: Callable[[str, str], None]
    # True when the run should continue as new; an auto tool call then interrupts the runner
    # so that even a run with no gated calls reaches a point where its state can be carried.
    checkpoint_due: Callable[[], bool]
    # Calls whose activity is running, for the `status` query (workflow memory, never history).
    in_flight: dict[str, InFlightCall] = field(default_factory=dict)
    # Where a server's input request (elicitation) waits for a person; None: it is refused.
    ask: Ask | None = None
    # The run's live events (workflows/events.py); None: nothing is published.
    events: RunEvents | None = None


def build_tool(tool: ToolPlan, agent: AgentPlan, runtime: ToolRuntime) -> FunctionTool:
    """An SDK function tool whose call is an activity, behind the gate when its policy says so."""

    async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
        decided = tool.policy
        rule: str | None = None
        if tool.rules and not schema_errors(tool.input_schema, params):
            ruling = await _ruled(call_id, params, tool, agent, runtime)
            rule = ruling.rule
            if ruling.policy == "deny":
                _ruled_event(runtime, call_id, agent, tool, "deny", rule)
                return False  # `invoke` tells the model, naming the rule
            decided = ruling.policy
        _ruled_event(runtime, call_id, agent, tool, decided, rule)
        if decided == "auto":
            return runtime.checkpoint_due()
        ledger = runtime.ledger
        # Past the budget nobody is asked: `invoke` tells the model (or stops the run). Runs that
        # asked before gated calls were counted replay as they ran.
        if ledger.full(call_id, agent.max_tool_calls) and workflow.patched("count-gated-calls"):
            ledger.over_budget.add(call_id)
            return False
        # Invalid arguments never reach an approver: the model hears about them instead.
        if schema_errors(tool.input_schema, params):
            return False
        ledger.asked.add(call_id)
        return True

    async def invoke(ctx: ToolContext[Any], raw: str) -> str | list[ToolOutputText | ToolOutputImage]:
        call_id = ctx.tool_call_id
        ledger = runtime.ledger
        # Checked before the arguments: a flood of calls past the budget costs no validation each.
        if (tool.policy == "approve" or tool.rules) and call_id in ledger.over_budget:
            if ledger.tool_calls >= agent.max_tool_calls:
                ledger.exceeded = f"max_tool_calls ({agent.max_tool_calls}) exceeded"
                raise BudgetStop(ledger.exceeded)
            return (
                f"Error: {tool.name} was not called: this run may make at most {agent.max_tool_calls} tool calls "
                "(max_tool_calls), and the calls made and those waiting for approval use them up; "
                "ask for fewer at a time."
            )
        arguments, problem = parse_arguments(raw, tool.input_schema)
        if arguments is None:
            return f"Error: {tool.name} was not called: {problem}."
        note = ""
        gated = tool.policy == "approve"
        if tool.rules:
            # Gated when the gate holds the call; else as the policies ruled, in this task or (a call
            # that paused only for a checkpoint, carried into a new run) judged again now.
            ruling = runtime.gate.rulings.get(call_id)
            if runtime.gate.get(call_id) is None and ruling is None:
                ruling = await _ruled(call_id, arguments, tool, agent, runtime)
            if ruling is not None and ruling.policy == "deny":
                runtime.gate.deny(
                    call_id,
                    agent=agent.name,
                    server=tool.server,
                    tool=tool.name,
                    arguments=arguments,
                    ruling=ruling,
                    now=workflow.now(),
                )
                why = f": {ruling.reason}" if ruling.reason else ""
                return f"Error: {tool.name} was not called: policy {ruling.rule} denies it{why}."
            gated = runtime.gate.get(call_id) is not None or (ruling.policy if ruling else tool.policy) == "approve"
        try:
            if gated:
                approved = runtime.gate.release(call_id, server=tool.server, tool=tool.name, requested=arguments)
                if approved != arguments:
                    note = f"Note: an approver edited this call; it ran with the arguments {json.dumps(approved)}.\n"
                arguments = approved
            elif not tool.read_only and not runtime.gate.start(call_id):
                raise AuthorityRefusedError(f"call id {call_id[:200]!r} already ran")
        except AuthorityRefusedError as err:
            return f"Error: {tool.name} was not called: {err}."
        if ledger.tool_calls >= agent.max_tool_calls:
            ledger.exceeded = f"max_tool_calls ({agent.max_tool_calls}) exceeded"
            raise BudgetStop(ledger.exceeded)
        ledger.tool_calls += 1
        call = ToolCall(
            agent=agent.name,
            server=tool.server,
            tool=tool.name,
            arguments=arguments,
            call_id=call_id,
            images=agent.model_takes_images,
            # The worker runs a gated call only with the signed approvals that count for it.
            authority=runtime.gate.proofs_of(call_id) if gated else [],
            requester=runtime.gate.requester,
            # The definition the model and any approver judged: the worker sends nothing if it changed.
            definition_sha256=tool.definition_sha256,
        )
        if not tool.read_only:
            call.idempotency_key = f"{runtime.workflow_id}/{call_id}"
        reply = await _answered(call, call_id, tool, runtime)
        if gated or not tool.read_only:
            runtime.on_outcome(call_id, reply.outcome)
        if runtime.events is not None:
            # The result's start only, as the worker scrubbed it; never the arguments.
            runtime.events.publish(
                "tool_finished",
                call_id=call_id,
                agent=agent.name,
                server=tool.server,
                tool=tool.name,
                outcome=reply.outcome if reply.outcome != "input_required" else "error",
                text=reply.text,
            )
        text = note + (reply.text if reply.outcome == "ok" else f"Error: {reply.text}")
        if not reply.images:
            return text
        # The SDK sends these as `input_image` parts of the function call output (Responses API).
        return [
            ToolOutputText(text=text),
            *(ToolOutputImage(image_url=f"data:{image.mime_type};base64,{image.data}") for image in reply.images),
        ]

    return FunctionTool(
        name=tool.name,
        description=tool.description,
        params_json_schema=tool.input_schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,
        needs_approval=needs_approval,
    )


def _ruled_event(
    runtime: ToolRuntime, call_id: str, agent: AgentPlan, tool: ToolPlan, policy: str, rule: str | None
) -> None:
    """Tell subscribers the model asked for a call and how it is ruled, once per call id."""
    if runtime.events is None or not runtime.events.first_time(call_id):
        return
    named = {"call_id": call_id, "agent": agent.name, "server": tool.server, "tool": tool.name}
    runtime.events.publish("tool_requested", **named)
    runtime.events.publish("tool_policy", policy=policy, rule=rule, **named)


async def _ruled(
    call_id: str, arguments: dict[str, Any], tool: ToolPlan, agent: AgentPlan, runtime: ToolRuntime
) -> Ruling:
    """The worker's Cedar policies on this call, judged now in a local step (its result is recorded).

    A ruling of no policy (`rule` None) leaves the plan's policy; a step that fails denies the call.
    """
    ruling = await steps.run_local(
        steps.RULE,
        RuleRequest(
            agent=agent.name,
            server=tool.server,
            tool=tool.name,
            arguments=arguments,
            requester=runtime.gate.requester,
        ),
        summary=f"{agent.name} / {tool.server}.{tool.name} policy",
        failed=lambda failure: Ruling(
            policy="deny", rule="cedar", reason=f"the policies could not judge it: {str(failure)[:200]}"
        ),
    )
    if ruling.rule is None:
        ruling = Ruling(policy=tool.policy)
    else:
        runtime.gate.rulings[call_id] = ruling
    return ruling


async def _answered(call: ToolCall, call_id: str, tool: ToolPlan, runtime: ToolRuntime) -> ToolReply:
    """Send the call; while its server asks for input nobody gave, wait for a person and send it again.

    Each send whose question was unanswered told the server `cancel`, so it did not act: the
    write is applied at most once, by the send that carries every answer. Each send has its own
    idempotency key (`.../input-<n>`), so a server that remembers keys does not replay the
    cancelled send's result.
    """
    key = call.idempotency_key
    while True:
        reply = await _send(call, call_id, tool, runtime)
        if reply.outcome != "input_required" or reply.question is None:
            return reply
        given = await runtime.ask(call_id, call.agent, tool, call.arguments, reply.question) if runtime.ask else None
        if given is None:
            return ToolReply(
                text=(
                    f"{call.server}.{call.tool} asked for input that could not be given "
                    "(too many questions in one call); it was answered cancel"
                ),
                outcome="error",
            )
        answers = [*call.answers, given]
        call = call.model_copy(
            update={
                "answers": answers,
                "idempotency_key": f"{key}/input-{len(answers)}" if key else None,
            }
        )


async def _send(call: ToolCall, call_id: str, tool: ToolPlan, runtime: ToolRuntime) -> ToolReply:
    """One send of the call, listed as in flight (for the `status` query) while its activity runs."""
    runtime.in_flight[call_id] = InFlightCall(call_id=call_id, server=tool.server, tool=tool.name, since=workflow.now())
    if runtime.events is not None:
        runtime.events.publish("tool_started", call_id=call_id, agent=call.agent, server=tool.server, tool=tool.name)
    try:
        if not tool.read_only:
            return await _write(call, tool)
        if tool.long_running:
            return await _read(call, tool)
        runtime.ledger.local_steps += 1  # an ordinary activity is counted by the history itself
        # Its result is recorded with this workflow task's completion: it must have room there.
        return await runtime.ledger.room.run(
            tool.max_result_bytes + READ_REPLY_OVERHEAD_BYTES, lambda: _read(call, tool)
        )
    finally:
        runtime.in_flight.pop(call_id, None)


async def _read(call: ToolCall, tool: ToolPlan) -> ToolReply:
    summary = f"{call.agent} / {call.server}.{call.tool}"
    timeout = timedelta(seconds=tool.timeout_seconds)
    if not tool.long_running:
        return await steps.run_local(
            steps.READ, call, start_to_close=timeout, summary=summary, failed=lambda failure: _unanswered(call, failure)
        )
    try:
        return await steps.run(steps.LONG_READ, call, start_to_close=timeout, summary=summary)
    except ActivityError as err:
        return _unanswered(call, FailedStep(err))


def _unanswered(call: ToolCall, failure: FailedStep) -> ToolReply:
    """The model's reply for a read that failed: refused by the worker, or unavailable."""
    if failure.is_(UnauthorizedCallError):
        return _refused(call, failure)
    return ToolReply(text=f"{call.server}.{call.tool} is unavailable: {_reason(failure)}", outcome="error")


async def _write(call: ToolCall, tool: ToolPlan) -> ToolReply:
    summary = f"{call.agent} / {call.server}.{call.tool}"
    for attempt in range(NOT_SENT_RESENDS + 1):
        try:
            return await steps.run(
                steps.IDEMPOTENT_WRITE if tool.idempotent else steps.WRITE,
                call,
                start_to_close=timedelta(seconds=tool.timeout_seconds),
                summary=summary,
            )
        except ActivityError as err:
            failure = FailedStep(err)
            if failure.is_(UnauthorizedCallError):
                return _refused(call, failure)
            not_sent = failure.is_(ToolNotSentError)
            if not_sent and attempt < NOT_SENT_RESENDS:
                await workflow.sleep(timedelta(seconds=2**attempt))
                continue
            if not_sent:
                return ToolReply(text=f"{summary} was not sent: {_reason(failure)}", outcome="error")
            if tool.idempotent:
                # Retried by policy: each attempt may have reached the server, under one key.
                repeated = (
                    f"it may have been sent up to {steps.IDEMPOTENT_WRITE.retry.maximum_attempts} times, each with the "
                    f"same idempotency key {call.idempotency_key!r}"
                )
            else:
                repeated = "it was not repeated"
            return ToolReply(
                text=(
                    f"the outcome of {call.server}.{call.tool} is unknown ({_reason(failure)}); "
                    f"it may or may not have been applied, and {repeated}"
                ),
                outcome="outcome_unknown",
            )
    raise AssertionError("unreachable")


def _refused(call: ToolCall, failure: FailedStep) -> ToolReply:
    """The reply for a call the worker refused to send: nothing was sent, and it is not tried again."""
    return ToolReply(text=f"{call.server}.{call.tool} was not called: {_reason(failure)}", outcome="error")


def _reason(failure: FailedStep) -> str:
    cause = failure.cause
    while cause is not None and cause.__cause__ is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    return str(cause or failure.error)[:300]
