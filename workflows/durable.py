"""The durable runner glue: one SDK agent per planned agent, with durable models and tools."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agents import Agent

from workflows.durable_model import DurableModel
from workflows.durable_tools import ToolRuntime, build_tool
from workflows.payloads import RunPlan


def build_agents(plan: RunPlan, runtime: ToolRuntime) -> dict[str, Agent[Any]]:
    """One SDK agent per planned agent, wired to each other by their handoffs."""
    timeout = timedelta(seconds=plan.model_timeout_seconds)
    agents: dict[str, Agent[Any]] = {
        name: Agent(
            name=name,
            instructions=spec.instructions,
            handoff_description=spec.handoff_description or None,
            model=DurableModel(spec, runtime.ledger, timeout, runtime.events),
            tools=[build_tool(tool, spec, runtime) for tool in spec.tools],
        )
        for name, spec in plan.agents.items()
    }
    for name, spec in plan.agents.items():
        agents[name].handoffs = [agents[target] for target in spec.handoffs]
    return agents
