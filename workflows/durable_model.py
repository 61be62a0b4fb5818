"""The Agents SDK `Model` whose every turn is the `airlock.model` local activity.

Runs inside the workflow: no I/O, clock, randomness or environment (the banned-API lint checks).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agents import FunctionTool, ModelResponse
from agents import Usage as SdkUsage
from agents.models.interface import Model
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import steps
from workflows.budget import BudgetStop, Ledger
from workflows.decoding import cut
from workflows.errors import ModelError, local_failure
from workflows.limits import MAX_MODEL_REPLY_BYTES
from workflows.model_output import OUTPUT_ITEM
from workflows.payloads import FORWARDED_MODEL_SETTINGS, AgentPlan, HandoffSpec, ModelCall, ModelReply, ToolSpec

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=["ModelError"],
)


class DurableModel(Model):
    """An Agents SDK model whose every turn is the `airlock.model` local activity."""

    def __init__(self, plan: AgentPlan, ledger: Ledger, timeout: timedelta) -> None:
        self.plan = plan
        self.ledger = ledger
        self.timeout = timeout

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        """Run one model turn as an activity and rebuild the SDK response from its result."""
        call = ModelCall(
            agent=self.plan.name,
            model=self.plan.model,
            instructions=system_instructions,
            input=input_items(input),
            tools=[
                ToolSpec(
                    name=t.name, description=t.description, parameters=t.params_json_schema, strict=t.strict_json_schema
                )
                for t in tools
                if isinstance(t, FunctionTool)
            ],
            handoffs=[
                HandoffSpec(
                    tool_name=h.tool_name,
                    tool_description=h.tool_description,
                    input_json_schema=h.input_json_schema,
                    agent_name=h.agent_name,
                    strict=h.strict_json_schema,
                )
                for h in handoffs
            ],
            settings={
                k: v
                for k, v in model_settings.to_json_dict().items()
                if v is not None and k in FORWARDED_MODEL_SETTINGS
            },
        )
        self.ledger.turns += 1
        self.ledger.local_steps += 1
        try:
            reply = await self.ledger.room.run(
                MAX_MODEL_REPLY_BYTES,
                lambda: workflow.execute_local_activity(
                    steps.model,
                    call,
                    start_to_close_timeout=self.timeout,
                    retry_policy=MODEL_RETRY,
                    summary=f"{self.plan.name} / model",
                ),
            )
        except (ActivityError, ApplicationError) as err:
            cause = local_failure(err)
            if ModelError.is_type_of(cause):
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
    return next(
        (item["call_id"] for item in output if isinstance(item.get("call_id"), str) and item["call_id"] in earlier),
        None,
    )


def model_response(reply: ModelReply) -> ModelResponse:
    """The SDK response rebuilt from a provider-neutral model reply."""
    return ModelResponse(
        output=[OUTPUT_ITEM.validate_python(item) for item in reply.output],
        usage=SdkUsage(
            requests=reply.usage.requests,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            total_tokens=reply.usage.input_tokens + reply.usage.output_tokens,
        ),
        response_id=reply.response_id,
    )
