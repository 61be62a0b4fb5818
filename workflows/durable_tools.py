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
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import steps
from workflows.arguments import parse_arguments, schema_errors
from workflows.budget import BudgetStop, Ledger
from workflows.errors import ToolNotSentError, UnauthorizedCallError, local_failure
from workflows.gate import ApprovalGate
from workflows.identity import RefusedError
from workflows.limits import READ_REPLY_OVERHEAD_BYTES
from workflows.payloads import AgentPlan, GivenAnswer, InFlightCall, InputQuestion, ToolCall, ToolPlan, ToolReply

READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
IDEMPOTENT_WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# A write that is not known to be idempotent is sent at most once per activity; the workflow
# re-sends it only when the activity proved nothing was sent (`ToolNotSent`).
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
NOT_SENT_RESENDS = 3
HEARTBEAT_TIMEOUT = timedelta(seconds=5)

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


def build_tool(tool: ToolPlan, agent: AgentPlan, runtime: ToolRuntime) -> FunctionTool:
    """An SDK function tool whose call is an activity, behind the gate when its policy says so."""

    async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
        if tool.policy == "auto":
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
        if tool.policy == "approve" and call_id in ledger.over_budget:
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
        try:
            if tool.policy == "approve":
                approved = runtime.gate.release(call_id, server=tool.server, tool=tool.name, requested=arguments)
                if approved != arguments:
                    note = f"Note: an approver edited this call; it ran with the arguments {json.dumps(approved)}.\n"
                arguments = approved
            elif not tool.read_only and not runtime.gate.start(call_id):
                raise RefusedError(f"call id {call_id[:200]!r} already ran")
        except RefusedError as err:
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
            authority=runtime.gate.proofs_of(call_id) if tool.policy == "approve" else [],
            requester=runtime.gate.requester,
        )
        if not tool.read_only:
            call.idempotency_key = f"{runtime.workflow_id}/{call_id}"
        reply = await _answered(call, call_id, tool, runtime)
        if tool.policy == "approve" or not tool.read_only:
            runtime.on_outcome(call_id, reply.outcome)
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
    try:
        if tool.long_running:
            # An ordinary activity heartbeats: progress shows in describe, cancellation arrives.
            return await workflow.execute_activity(
                steps.read,
                call,
                start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=READ_RETRY,
                summary=f"{call.agent} / {call.server}.{call.tool}",
            )
        reply = await workflow.execute_local_activity(
            steps.read,
            call,
            start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
            retry_policy=READ_RETRY,
            summary=f"{call.agent} / {call.server}.{call.tool}",
        )
        return reply
    except (ActivityError, ApplicationError) as err:
        if UnauthorizedCallError.is_type_of(local_failure(err)):
            return _refused(call, err)
        return ToolReply(text=f"{call.server}.{call.tool} is unavailable: {_reason(err)}", outcome="error")


async def _write(call: ToolCall, tool: ToolPlan) -> ToolReply:
    summary = f"{call.agent} / {call.server}.{call.tool}"
    for attempt in range(NOT_SENT_RESENDS + 1):
        try:
            reply = await workflow.execute_activity(
                steps.write,
                call,
                start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=IDEMPOTENT_WRITE_RETRY if tool.idempotent else SINGLE_ATTEMPT,
                summary=summary,
            )
            return reply
        except ActivityError as err:
            cause = err.cause
            if UnauthorizedCallError.is_type_of(cause):
                return _refused(call, err)
            not_sent = ToolNotSentError.is_type_of(cause)
            if not_sent and attempt < NOT_SENT_RESENDS:
                await workflow.sleep(timedelta(seconds=2**attempt))
                continue
            if not_sent:
                return ToolReply(text=f"{summary} was not sent: {_reason(err)}", outcome="error")
            if tool.idempotent:
                # Retried by policy: each attempt may have reached the server, under one key.
                repeated = (
                    f"it may have been sent up to {IDEMPOTENT_WRITE_RETRY.maximum_attempts} times, each with the "
                    f"same idempotency key {call.idempotency_key!r}"
                )
            else:
                repeated = "it was not repeated"
            return ToolReply(
                text=(
                    f"the outcome of {call.server}.{call.tool} is unknown ({_reason(err)}); "
                    f"it may or may not have been applied, and {repeated}"
                ),
                outcome="outcome_unknown",
            )
    raise AssertionError("unreachable")


def _refused(call: ToolCall, err: ActivityError | ApplicationError) -> ToolReply:
    """The reply for a call the worker refused to send: nothing was sent, and it is not tried again."""
    return ToolReply(text=f"{call.server}.{call.tool} was not called: {_reason(err)}", outcome="error")


def _reason(err: ActivityError | ApplicationError) -> str:
    cause = local_failure(err)
    while cause is not None and cause.__cause__ is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    return str(cause or err)[:300]
