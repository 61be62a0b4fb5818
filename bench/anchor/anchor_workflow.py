"""The anchor's workflow: the benchmark's reader agent run by Temporal's own OpenAI Agents integration.

Runs in the anchor venv (`temporalio-openai-agents` and its Agents SDK pin), never in Airlock's.
Input and result are plain JSON objects, so the bench starts it by name with any client.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent, RunConfig, Runner
    from temporalio.openai_agents.workflow import temporal_mcp_server

WORKFLOW_NAME = "AnchorAgentWorkflow"
TICKETS = "tickets"  # the name the worker registers its stdio server factory under


@workflow.defn(name=WORKFLOW_NAME)
class AnchorAgentWorkflow:
    """One agent run: `{"agent", "input", "instructions", "max_turns"}` → `{"status", "output", "turns"}`.

    The agent's model name is its own name, which the worker's scripted provider plays.
    """

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run the agent to its final answer."""
        agent: Agent[None] = Agent(
            name=request["agent"],
            instructions=request["instructions"],
            model=request["agent"],
            # The integration's default: the tool list is cached in workflow state, so it is
            # listed once per run, as Airlock does.
            mcp_servers=[temporal_mcp_server(TICKETS)],
        )
        result = await Runner.run(
            agent,
            request["input"],
            max_turns=int(request["max_turns"]),
            run_config=RunConfig(tracing_disabled=True),
        )
        return {"status": "completed", "output": str(result.final_output), "turns": len(result.raw_responses)}
