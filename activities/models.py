"""Model backends used by the `model` activity: the offline scripted model and OpenAI's APIs."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import openai
from agents import FunctionTool, Handoff, ModelSettings, ModelTracing
from agents.models.interface import Model
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mcp_servers.tomlfiles import ConfigError
from workflows.errors import ModelError, ModelUnavailableError
from workflows.payloads import FORWARDED_MODEL_SETTINGS, HandoffSpec, ModelCall, ModelReply, ToolSpec, Usage


class ModelBackend(Protocol):
    """Answers one model turn."""

    async def respond(self, call: ModelCall) -> ModelReply:
        """Produce the model's output items for `call`."""
        ...


# --- scripted ---------------------------------------------------------------------------------


# `{ticket}` in a script: the first such id the user's message names (bounded, so linear), else T-1.
TICKET_ID = re.compile(r"\bT-\d{1,9}\b")
DEFAULT_TICKET = "T-1"


class _ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ScriptStep(BaseModel):
    """One scripted model turn: a tool call, several tool calls, or a final message.

    `{input}` in a message stands for the run's latest user message, so a scripted agent can
    show what it was given (a pipeline's templated input, for example). `{ticket}`, in a message
    or in a tool call's arguments, stands for the first ticket id (`T-2`) that message names, or
    `T-1` when it names none: the scripted support agent closes the ticket it was asked about.
    """

    model_config = ConfigDict(extra="forbid")

    tool_call: _ScriptedCall | None = None
    tool_calls: list[_ScriptedCall] | None = None
    message: str | None = None
    # Played instead of `message` when the previous turn's call did not run (rejected, timed out,
    # refused): a scripted agent that hears "no" must not claim it did the thing.
    if_not_run: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ScriptStep:
        given = [self.tool_call is not None, self.tool_calls is not None, self.message is not None]
        if sum(given) != 1:
            raise ValueError("a step has exactly one of 'tool_call', 'tool_calls', 'message'")
        if self.if_not_run is not None and self.message is None:
            raise ValueError("'if_not_run' goes with 'message'")
        return self


def load_script(path: Path) -> dict[str, list[ScriptStep]]:
    """Read `AIRLOCK_SCRIPTED_MODEL_FILE`: agent name → list of steps."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: scripted model file not found (AIRLOCK_SCRIPTED_MODEL_FILE)") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object mapping agent name to a list of steps")
    script: dict[str, list[ScriptStep]] = {}
    for agent, steps in data.items():
        if not isinstance(steps, list):
            raise ConfigError(f"{path}: key {agent!r}: expected a list of steps")
        parsed = []
        for index, step in enumerate(steps):
            try:
                parsed.append(ScriptStep.model_validate(step))
            except ValidationError as err:
                first = err.errors()[0]
                raise ConfigError(f"{path}: key '{agent}[{index}]': {first['msg']}") from None
        script[agent] = parsed
    return script


class ScriptedModel:
    """The offline, deterministic model: the n-th turn of an agent plays step n of its script.

    The turn number is counted from the conversation itself (ids this model gave its earlier
    outputs), so a retried or replayed call gets the same answer.
    """

    def __init__(self, script: dict[str, list[ScriptStep]]) -> None:
        self.script = script

    @staticmethod
    def turn_of(agent: str, items: list[dict[str, Any]]) -> int:
        """How many turns `agent` has already played in this conversation."""
        own = re.compile(rf"^(?:call|msg)-{re.escape(agent)}-(\d+)(?:-\d+)?$")
        seen: set[int] = set()
        for item in items:
            for key in ("call_id", "id"):
                value = item.get(key)
                if isinstance(value, str) and (match := own.match(value)):
                    seen.add(int(match.group(1)))
        return max(seen) + 1 if seen else 0

    async def respond(self, call: ModelCall) -> ModelReply:
        """Play the next step of the agent's script."""
        steps = self.script.get(call.agent)
        if steps is None:
            raise ModelError(f"the scripted model has no script for agent {call.agent!r}")
        turn = self.turn_of(call.agent, call.input)
        if turn >= len(steps):
            raise ModelError(f"the script of agent {call.agent!r} has {len(steps)} steps; turn {turn + 1} has none")
        step = steps[turn]
        output: list[dict[str, Any]] = []
        asked = _last_user_text(call.input)
        ticket = _ticket_named(asked)
        if step.message is not None:
            message = step.message.replace("{ticket}", ticket)
            if step.if_not_run is not None and (not_run := _last_call_not_run(call.input)) is not None:
                message = step.if_not_run.replace("{ticket}", ticket).replace("{output}", not_run)
            # `{ticket}` first: the texts put in for `{output}` and `{input}` are shown as they are.
            text = message.replace("{input}", asked)
            output.append(
                {
                    "type": "message",
                    "id": f"msg-{call.agent}-{turn}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
        calls = [step.tool_call] if step.tool_call is not None else step.tool_calls or []
        for index, scripted in enumerate(calls):
            call_id = f"call-{call.agent}-{turn}" if len(calls) == 1 else f"call-{call.agent}-{turn}-{index}"
            arguments = scripted.arguments if isinstance(scripted.arguments, str) else json.dumps(scripted.arguments)
            # A ticket id is letters, digits and `-`: put in, it keeps the JSON valid.
            arguments = arguments.replace("{ticket}", ticket)
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc-{call_id}",
                    "call_id": call_id,
                    "name": scripted.name,
                    "arguments": arguments,
                    "status": "completed",
                }
            )
        return ModelReply(output=output, usage=Usage(requests=1))


def _last_call_not_run(items: list[dict[str, Any]]) -> str | None:
    """What the model was told about its latest tool call, if that call did not run."""
    for item in reversed(items):
        if item.get("type") == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            return text if text.startswith("Error") or "was not executed" in text else None
    return None


def _ticket_named(text: str) -> str:
    """The first ticket id (`T-2`) in `text`, or `T-1` when it names none."""
    match = TICKET_ID.search(text)
    return match.group(0) if match else DEFAULT_TICKET


def _last_user_text(items: list[dict[str, Any]]) -> str:
    """The text of the conversation's latest user message (what `{input}` stands for in a script)."""
    for item in reversed(items):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


# --- OpenAI -----------------------------------------------------------------------------------


class OpenAIModel:
    """Any OpenAI-compatible endpoint, through the Agents SDK's own model classes."""

    def __init__(self, client: openai.AsyncOpenAI, api: Literal["responses", "chat_completions"]) -> None:
        self.client = client
        self.api = api

    def _model(self, name: str) -> Model:
        if self.api == "chat_completions":
            return OpenAIChatCompletionsModel(model=name, openai_client=self.client)
        return OpenAIResponsesModel(model=name, openai_client=self.client)

    async def respond(self, call: ModelCall) -> ModelReply:
        """Send one turn to the provider; transient failures raise retryable errors."""
        tools = [_schema_tool(spec) for spec in call.tools]
        handoffs = [_schema_handoff(spec) for spec in call.handoffs]
        settings = ModelSettings(**{k: v for k, v in call.settings.items() if k in FORWARDED_MODEL_SETTINGS})
        response = await self._model(call.model).get_response(
            call.instructions,
            call.input,  # type: ignore[arg-type]
            settings,
            list(tools),
            None,
            handoffs,
            ModelTracing.DISABLED,
            previous_response_id=None,
            conversation_id=None,
            prompt=None,
        )
        usage = response.usage
        return ModelReply(
            output=[item.model_dump(mode="json", exclude_none=True) for item in response.output],
            usage=Usage(requests=1, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            response_id=response.response_id,
        )


async def _never(*_: object) -> str:
    raise RuntimeError("schema-only tool: tools run in the workflow, not in the model activity")


def _schema_tool(spec: ToolSpec) -> FunctionTool:
    return FunctionTool(
        name=spec.name,
        description=spec.description,
        params_json_schema=spec.parameters,
        on_invoke_tool=_never,
        strict_json_schema=spec.strict,
    )


def _schema_handoff(spec: HandoffSpec) -> Handoff[Any, Any]:
    return Handoff(
        tool_name=spec.tool_name,
        tool_description=spec.tool_description,
        input_json_schema=spec.input_json_schema,
        on_invoke_handoff=_never,
        agent_name=spec.agent_name,
        strict_json_schema=spec.strict,
    )


def provider_failure(err: openai.APIError) -> Exception:
    """Map a provider error to a Temporal failure.

    408/409/429/5xx and network errors retry (honouring `Retry-After`); other 4xx are permanent.
    """
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status in (408, 409, 429) or status >= 500:
            delay = _retry_after(err.response.headers.get("retry-after"))
            return ModelUnavailableError(
                f"model provider answered {status}; will retry",
                next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
            )
        return ModelError(f"model provider refused the request ({status}): {err.message}")
    return ModelUnavailableError(f"model provider unreachable: {type(err).__name__}")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 300.0)
    except ValueError:
        return None
