"""The durable runner glue: Agents SDK models and tools whose every call is a Temporal activity.

This module runs inside the workflow sandbox, so it follows the workflow rules: no I/O, clock,
randomness or environment; time comes from `workflow.now()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agents import Agent, FunctionTool, ModelResponse, RunContextWrapper
from agents import Usage as SdkUsage
from agents.models.interface import Model
from agents.tool_context import ToolContext
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.arguments import parse_arguments, schema_errors
from workflows.decoding import cut
from workflows.errors import ModelError
from workflows.gate import ApprovalGate
from workflows.identity import RefusedError
from workflows.model_output import OUTPUT_ITEM
from workflows.payloads import (
    FORWARDED_MODEL_SETTINGS,
    AgentPlan,
    ModelCall,
    ModelReply,
    RunPlan,
    ToolCall,
    ToolPlan,
    ToolReply,
    Usage,
)

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60), maximum_attempts=8,
    non_retryable_error_types=["ModelError"],
)
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10), maximum_attempts=5,
)
IDEMPOTENT_WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10), maximum_attempts=5,
)
# A write that is not known to be idempotent is sent at most once per activity; the workflow
# re-sends it only when the activity proved nothing was sent (`ToolNotSent`).
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
NOT_SENT_RESENDS = 3


class BudgetStop(Exception):
    """Raised inside the runner when a budget is used up; the workflow reports it."""


@dataclass
class Ledger:
    """Counters of one run, shared by its models and tools."""

    turns: int = 0
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    exceeded: str | None = None
    # Local activities started in this run (not carried over by continue-as-new).
    local_steps: int = 0


class DurableModel(Model):
    """An Agents SDK model whose every turn is the `airlock.model` local activity."""

    def __init__(self, plan: AgentPlan, ledger: Ledger, timeout: timedelta) -> None:
        self.plan = plan
        self.ledger = ledger
        self.timeout = timeout

    async def get_response(
        self, system_instructions: str | None, input: str | list[Any], model_settings: Any,
        tools: list[Any], output_schema: Any, handoffs: list[Any], tracing: Any, *,
        previous_response_id: str | None = None, conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        """Run one model turn as an activity and rebuild the SDK response from its result."""
        call = ModelCall(
            agent=self.plan.name, model=self.plan.model, instructions=system_instructions,
            input=input_items(input),
            tools=[
                {"name": t.name, "description": t.description, "parameters": t.params_json_schema,
                 "strict": t.strict_json_schema}
                for t in tools if isinstance(t, FunctionTool)
            ],
            handoffs=[
                {"tool_name": h.tool_name, "tool_description": h.tool_description,
                 "input_json_schema": h.input_json_schema, "agent_name": h.agent_name,
                 "strict": h.strict_json_schema}
                for h in handoffs
            ],
            settings={
                k: v for k, v in model_settings.to_json_dict().items()
                if v is not None and k in FORWARDED_MODEL_SETTINGS
            },
        )
        self.ledger.turns += 1
        self.ledger.local_steps += 1
        try:
            reply = await workflow.execute_local_activity(
                "airlock.model", call, result_type=ModelReply,
                start_to_close_timeout=self.timeout, retry_policy=MODEL_RETRY,
                summary=f"{self.plan.name} / model",
            )
        except (ActivityError, ApplicationError) as err:
            cause = local_failure(err)
            if isinstance(cause, ApplicationError) and cause.type == "ModelError":
                raise ModelError(cause.message) from None
            raise ModelError(f"model call failed after retries: {cause}") from None
        reused = reused_call_id(call.input, reply.output)
        if reused is not None:
            # The SDK silently drops a call that repeats an earlier one's id and asks the model
            # again with the same conversation, so a model that repeats itself would spin until
            # max_turns without ever hearing why: fail the run now, saying so.
            raise ModelError(f"the model reused the call id {cut(reused)!r} of an earlier tool call in this run")
        usage = self.ledger.usage
        usage.requests += reply.usage.requests
        usage.input_tokens += reply.usage.input_tokens
        usage.output_tokens += reply.usage.output_tokens
        if usage.input_tokens + usage.output_tokens > self.plan.max_total_tokens:
            self.ledger.exceeded = f"max_total_tokens ({self.plan.max_total_tokens}) exceeded"
            raise BudgetStop(self.ledger.exceeded)
        return model_response(reply)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        """Streaming is not offered: a durable turn is one recorded result."""
        raise NotImplementedError("Airlock runs models without streaming")


def input_items(input: str | list[Any]) -> list[dict[str, Any]]:
    """The SDK's model input as Responses-format JSON items."""
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    return [item if isinstance(item, dict) else item.model_dump(mode="json", exclude_none=True) for item in input]


def reused_call_id(conversation: list[dict[str, Any]], output: list[dict[str, Any]]) -> str | None:
    """A call id in the model's new output that an earlier tool call of the conversation used, if any."""
    earlier = {item.get("call_id") for item in conversation if isinstance(item.get("call_id"), str)}
    return next((
        item["call_id"] for item in output if isinstance(item.get("call_id"), str) and item["call_id"] in earlier
    ), None)


def model_response(reply: ModelReply) -> ModelResponse:
    """The SDK response rebuilt from a provider-neutral model reply."""
    return ModelResponse(
        output=[OUTPUT_ITEM.validate_python(item) for item in reply.output],
        usage=SdkUsage(
            requests=reply.usage.requests, input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            total_tokens=reply.usage.input_tokens + reply.usage.output_tokens,
        ),
        response_id=reply.response_id,
    )


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


def build_tool(tool: ToolPlan, agent: AgentPlan, runtime: ToolRuntime) -> FunctionTool:
    """An SDK function tool whose call is an activity, behind the gate when its policy says so."""

    async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any], _call_id: str) -> bool:
        if tool.policy == "auto":
            return runtime.checkpoint_due()
        # Invalid arguments never reach an approver: the model hears about them instead.
        return not schema_errors(tool.input_schema, params)

    async def invoke(ctx: ToolContext[Any], raw: str) -> str:
        arguments, problem = parse_arguments(raw, tool.input_schema)
        if arguments is None:
            return f"Error: {tool.name} was not called: {problem}."
        call_id = ctx.tool_call_id
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
        ledger = runtime.ledger
        if ledger.tool_calls >= agent.max_tool_calls:
            ledger.exceeded = f"max_tool_calls ({agent.max_tool_calls}) exceeded"
            raise BudgetStop(ledger.exceeded)
        ledger.tool_calls += 1
        call = ToolCall(agent=agent.name, server=tool.server, tool=tool.name, arguments=arguments)
        if tool.read_only:
            ledger.local_steps += 1
            reply = await _read(call, tool)
        else:
            call.idempotency_key = f"{runtime.workflow_id}/{call_id}"
            reply = await _write(call, tool)
        if tool.policy == "approve" or not tool.read_only:
            runtime.on_outcome(call_id, reply.outcome)
        return note + (reply.text if reply.outcome == "ok" else f"Error: {reply.text}")

    return FunctionTool(
        name=tool.name,
        description=tool.description,
        params_json_schema=tool.input_schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,
        needs_approval=needs_approval,
    )


async def _read(call: ToolCall, tool: ToolPlan) -> ToolReply:
    try:
        reply: ToolReply = await workflow.execute_local_activity(
            "airlock.read", call, result_type=ToolReply,
            start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
            retry_policy=READ_RETRY, summary=f"{call.agent} / {call.server}.{call.tool}",
        )
        return reply
    except (ActivityError, ApplicationError) as err:
        return ToolReply(text=f"{call.server}.{call.tool} is unavailable: {_reason(err)}", outcome="error")


async def _write(call: ToolCall, tool: ToolPlan) -> ToolReply:
    summary = f"{call.agent} / {call.server}.{call.tool}"
    for attempt in range(NOT_SENT_RESENDS + 1):
        try:
            reply: ToolReply = await workflow.execute_activity(
                "airlock.write", call, result_type=ToolReply,
                start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
                heartbeat_timeout=timedelta(seconds=5),
                retry_policy=IDEMPOTENT_WRITE_RETRY if tool.idempotent else SINGLE_ATTEMPT,
                summary=summary,
            )
            return reply
        except ActivityError as err:
            cause = err.cause
            not_sent = isinstance(cause, ApplicationError) and cause.type == "ToolNotSent"
            if not_sent and attempt < NOT_SENT_RESENDS:
                await workflow.sleep(timedelta(seconds=2**attempt))
                continue
            if not_sent:
                return ToolReply(text=f"{summary} was not sent: {_reason(err)}", outcome="error")
            return ToolReply(
                text=(f"the outcome of {call.server}.{call.tool} is unknown ({_reason(err)}); "
                      "it may or may not have been applied and was not repeated"),
                outcome="outcome_unknown",
            )
    raise AssertionError("unreachable")


def local_failure(err: ActivityError | ApplicationError) -> BaseException | None:
    """The failure an activity ended with.

    A regular activity's failure arrives wrapped in `ActivityError`; a local activity that has
    failed for good arrives as its own last `ApplicationError`, unwrapped (temporalio 1.35), so
    workflow code that only caught `ActivityError` let it fail the whole run.
    """
    return err.cause if isinstance(err, ActivityError) else err


def _reason(err: ActivityError | ApplicationError) -> str:
    cause = local_failure(err)
    while cause is not None and cause.__cause__ is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    return str(cause or err)[:300]


def build_agents(plan: RunPlan, runtime: ToolRuntime) -> dict[str, Agent[Any]]:
    """One SDK agent per planned agent, wired to each other by their handoffs."""
    timeout = timedelta(seconds=plan.model_timeout_seconds)
    agents: dict[str, Agent[Any]] = {
        name: Agent(
            name=name,
            instructions=spec.instructions,
            handoff_description=spec.handoff_description or None,
            model=DurableModel(spec, runtime.ledger, timeout),
            tools=[build_tool(tool, spec, runtime) for tool in spec.tools],
        )
        for name, spec in plan.agents.items()
    }
    for name, spec in plan.agents.items():
        agents[name].handoffs = [agents[target] for target in spec.handoffs]
    return agents
