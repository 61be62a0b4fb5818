"""The non-durable floor: the plain Agents SDK `Runner` with one `MCPServerStdio` kept open."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType

from agents import Agent, RunConfig, Runner
from agents.mcp import MCPServerStdio
from mcp.client.stdio import get_default_environment
from scenario import READER_INSTRUCTIONS, Scenario, max_turns_of, reader_agent
from sdk_model import ScriptedSdkModel

from activities.models import ScriptedModel

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_CONFIG = RunConfig(tracing_disabled=True)


class PlainRunner:
    """Runs the scenario's agents with `Runner.run`, sharing one stdio MCP session across runs.

    Tools are listed once and cached (`cache_tools_list`), which makes this the tightest floor:
    Airlock lists tools once per run, the SDK's default lists them once per turn.
    """

    def __init__(self, scenario: Scenario) -> None:
        env = get_default_environment() | {"TICKETS_DB": str(scenario.plain_db)}
        self.server = MCPServerStdio(
            {"command": sys.executable, "args": ["-m", "mcp_servers.tickets"], "env": env, "cwd": str(REPO_ROOT)},
            cache_tools_list=True,
            name="tickets",
            client_session_timeout_seconds=30,
        )
        backend = ScriptedModel(scenario.script)
        self.agents = {
            name: Agent(
                name=name,
                instructions=READER_INSTRUCTIONS,
                model=ScriptedSdkModel(backend, name),
                mcp_servers=[self.server],
            )
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
        await Runner.run(self.agents[agent], prompt, max_turns=self.max_turns.get(agent, 20), run_config=RUN_CONFIG)
        return time.perf_counter() - start
