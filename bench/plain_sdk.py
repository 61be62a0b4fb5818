"""The non-durable floor: the plain Agents SDK `Runner` with one `MCPServerStdio` kept open."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from agents import Agent, ModelResponse, RunConfig, Runner
from agents.mcp import MCPServerStdio
from agents.models.interface import Model
from mcp.client.stdio import get_default_environment
from scenario import Scenario, max_turns_of, reader_agent

from workflows.durable_model import input_items, model_response
from workflows.models import ScriptedModel
from workflows.payloads import ModelCall

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_CONFIG = RunConfig(tracing_disabled=True)


class PlainScriptedModel(Model):
    """A zero-latency SDK model playing the same script as Airlock's scripted backend."""

    def __init__(self, backend: ScriptedModel, agent: str) -> None:
        self.backend = backend
        self.agent = agent

    async def get_response(
        self, system_instructions: str | None, input: str | list[Any], model_settings: Any,
        tools: list[Any], output_schema: Any, handoffs: list[Any], tracing: Any, *,
        previous_response_id: str | None = None, conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        """Play the next scripted step; the output is rebuilt the way `workflows.durable` does."""
        reply = await self.backend.respond(ModelCall(
            agent=self.agent, model="scripted", instructions=system_instructions,
            input=input_items(input),
        ))
        return model_response(reply)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        """Not used by the benchmark."""
        raise NotImplementedError


class PlainRunner:
    """Runs the scenario's agents with `Runner.run`, sharing one stdio MCP session across runs.

    Tools are listed once and cached (`cache_tools_list`), which makes this the tightest floor:
    Airlock lists tools once per run, the SDK's default lists them once per turn.
    """

    def __init__(self, scenario: Scenario) -> None:
        env = get_default_environment() | {"TICKETS_DB": str(scenario.plain_db)}
        self.server = MCPServerStdio(
            {"command": sys.executable, "args": ["-m", "mcp_servers.tickets"], "env": env,
             "cwd": str(REPO_ROOT)},
            cache_tools_list=True, name="tickets", client_session_timeout_seconds=30,
        )
        backend = ScriptedModel(scenario.script)
        self.agents = {
            name: Agent(name=name, instructions="Read the tickets you are asked about.",
                        model=PlainScriptedModel(backend, name), mcp_servers=[self.server])
            for name in scenario.script
        }
        self.max_turns = {reader_agent(k): max_turns_of(k) for k in scenario.ks}

    async def __aenter__(self) -> PlainRunner:
        await self.server.connect()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.server.cleanup()  # type: ignore[no-untyped-call]

    async def run(self, agent: str, prompt: str) -> float:
        """One run of `agent` to its final answer; returns its wall time in seconds."""
        start = time.perf_counter()
        await Runner.run(self.agents[agent], prompt, max_turns=self.max_turns.get(agent, 20),
                         run_config=RUN_CONFIG)
        return time.perf_counter() - start
