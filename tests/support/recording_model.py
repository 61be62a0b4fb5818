"""A model backend that records every turn: model calls are local activities, so their inputs
never reach history, and this is the only place to see the conversation the model received."""

from __future__ import annotations

from dataclasses import dataclass, field

from activities.airlock_activities import AirlockActivities
from activities.models import ModelBackend
from workflows.payloads import ModelCall, ModelReply


@dataclass
class RecordingModel:
    """Delegates to the worker's real model backend and keeps every conversation it was sent."""

    inner: ModelBackend
    calls: list[ModelCall] = field(default_factory=list)

    async def respond(self, call: ModelCall) -> ModelReply:
        """Record `call`, then answer it with the wrapped backend."""
        self.calls.append(call)
        return await self.inner.respond(call)

    def tool_outputs(self) -> list[str]:
        """Every tool result the model was shown, once per tool call, in order."""
        seen: dict[str, str] = {}
        for call in self.calls:
            for item in call.input:
                output = item.get("output")
                if item.get("type") == "function_call_output" and isinstance(output, str):
                    seen.setdefault(str(item.get("call_id")), output)
        return list(seen.values())

    def fresh_tool_outputs(self) -> list[str]:
        """For each model turn that follows tool calls, the result it was answering (its last input).

        Unlike `tool_outputs`, this counts across runs, whose scripted call ids repeat.
        """
        return [
            str(call.input[-1].get("output"))
            for call in self.calls
            if call.input and call.input[-1].get("type") == "function_call_output"
        ]


def record_model(activities: AirlockActivities) -> RecordingModel:
    """Make the worker's model activity record what it is sent; returns the recorder."""
    recorder = RecordingModel(activities.model_backend)
    activities.model_backend = recorder
    return recorder
