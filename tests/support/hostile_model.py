"""A model backend that plays a hostile model: each run gets the output items a test chose.

The replies are Responses output items with call ids and arguments the test picks (reused,
duplicated, empty, shell metacharacters), which no real provider would be asked to produce.
The n-th turn of a run is counted from the ids this backend gave its earlier items, as the
scripted model does, so a retried model call gets the same answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.airlock_activities import AirlockActivities
from workflows.errors import ModelError
from workflows.payloads import ModelCall, ModelReply, Usage

_OWN_ID = re.compile(r"^hostile-(\d+)-")


def call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    """One `function_call` turn item."""
    return {"kind": "call", "name": name, "arguments": arguments, "call_id": call_id}


def say(text: str) -> dict[str, Any]:
    """A final assistant message."""
    return {"kind": "message", "text": text}


@dataclass
class HostileModel:
    """Answers turn n of run W with `turns[W][n]` (a list of `call`/`say` items)."""

    turns: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    calls: dict[str, list[ModelCall]] = field(default_factory=dict)

    async def respond(self, model_call: ModelCall) -> ModelReply:
        """Play the next turn of the run this model activity belongs to."""
        run = activity.info().workflow_id or ""
        self.calls.setdefault(run, []).append(model_call)
        turns = self.turns.get(run)
        if turns is None:
            raise ModelError(f"the hostile model has nothing for run {run!r}")
        turn = _turn_of(model_call.input)
        if turn >= len(turns):
            raise ModelError(f"the hostile model has {len(turns)} turns for {run!r}; turn {turn + 1} has none")
        output: list[dict[str, Any]] = []
        for index, item in enumerate(turns[turn]):
            item_id = f"hostile-{turn}-{index}"
            if item["kind"] == "message":
                output.append(
                    {
                        "type": "message",
                        "id": item_id,
                        "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": item["text"], "annotations": []}],
                    }
                )
            else:
                output.append(
                    {
                        "type": "function_call",
                        "id": item_id,
                        "call_id": item["call_id"],
                        "name": item["name"],
                        "arguments": json.dumps(item["arguments"]),
                        "status": "completed",
                    }
                )
        return ModelReply(output=output, usage=Usage(requests=1))


def _turn_of(items: list[dict[str, Any]]) -> int:
    seen = {int(m.group(1)) for item in items if isinstance(item.get("id"), str) and (m := _OWN_ID.match(item["id"]))}
    return max(seen) + 1 if seen else 0


def install(activities: AirlockActivities) -> HostileModel:
    """Make the worker's model activity answer with a hostile model; returns it."""
    model = HostileModel()
    activities.model_backend = model
    return model
