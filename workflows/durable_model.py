"""The Agents SDK `Model` whose every turn is the `airlock.model` local activity (`steps.MODEL`).

Runs inside the workflow: no I/O, clock, randomness or environment (the banned-API lint checks).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agents import FunctionTool, ModelResponse
from agents import Usage as SdkUsage
from agents.models.interface import Model

from workflows import steps
from workflows.budget import BudgetStop, Ledger
from workflows.decoding import cut
from workflows.errors import ModelError
from workflows.events import RunEvents
from workflows.limits import MAX_MODEL_REPLY_BYTES
from workflows.model_output import OUTPUT_ITEM
from workflows.payloads import FORWARDED_MODEL_SETTINGS, AgentPlan, HandoffSpec, ModelCall, ModelReply, ToolSpec


class DurableModel(Model):
    """An Agents SDK model whose every turn is the `airlock.model` local activity."""

    def __init__(self, plan: AgentPlan, ledger: Ledger, timeout: timedelta, events: RunEvents | None = None) -> None:
        self.plan = plan
        self.ledger = ledger
        self.timeout = timeout
        self.events = events

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
        reply = await self.ledger.room.run(
            MAX_MODEL_REPLY_BYTES,
            lambda: steps.run_local(
                steps.MODEL,
                call,
                start_to_close=self.timeout,
                summary=f"{self.plan.name} / model",
                keep=(ModelError,),
                failed=lambda failure: ModelError(f"model call failed after retries: {failure}"),
            ),
        )
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
        if self.events is not None:
            self.events.publish("model_turn", agent=self.plan.name, turn=self.ledger.turns, text=reply_text(reply))
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


def reply_text(reply: ModelReply) -> str:
    """The text the model wrote in its reply (its messages' text parts), without its tool calls."""
    parts = [
        part["text"]
        for item in reply.output
        if item.get("type") == "message" and isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    return "\n".join(parts)


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
