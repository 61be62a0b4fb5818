"""The scripted model as an Agents SDK `Model`: the plain side's model and the anchor's provider.

Both the plain runner (this venv) and the anchor worker (its own venv, its own Agents SDK pin)
import this module, so all three sides play one script through `activities.models.ScriptedModel`.
"""

from __future__ import annotations

from typing import Any

from agents import ModelProvider, ModelResponse
from agents.models.interface import Model

from activities.models import ScriptedModel
from workflows.durable_model import input_items, model_response
from workflows.payloads import ModelCall


class ScriptedSdkModel(Model):
    """A zero-latency SDK model playing the same script as Airlock's scripted backend."""

    def __init__(self, backend: ScriptedModel, agent: str) -> None:
        self.backend = backend
        self.agent = agent

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
        """Play the next scripted step; the output is rebuilt the way `workflows.durable_model` does."""
        reply = await self.backend.respond(
            ModelCall(
                agent=self.agent,
                model="scripted",
                instructions=system_instructions,
                input=input_items(input),
            )
        )
        return model_response(reply)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        """Not used by the benchmark."""
        raise NotImplementedError


class ScriptedProvider(ModelProvider):
    """Model name → scripted model; the anchor's agents name their model after themselves."""

    def __init__(self, backend: ScriptedModel) -> None:
        self.backend = backend

    def get_model(self, model_name: str | None) -> Model:
        """The scripted model of the agent called `model_name`."""
        if model_name is None:
            raise ValueError("the scripted provider needs the agent's name as its model name")
        return ScriptedSdkModel(self.backend, model_name)
