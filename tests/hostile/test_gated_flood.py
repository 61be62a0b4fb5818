"""One model turn of hundreds of gated calls puts only what the budget allows in front of people.

Real Temporal, the bundled tickets server over stdio, the scripted model playing a hostile
model: one turn asks to close tickets hundreds of times. Gated calls count against
`max_tool_calls` when they are put before people, so only as many approvals are asked as the run
may still make calls; the rest are refused to the model, which hears why. With nothing left of
the budget, a gated call stops the run as any call over the budget does, and nobody is asked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import SUPPORT_AGENT, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, failure_of, pending_of, wait_pending, workflow_id
from workflows.limits import MAX_TOOL_CALLS_PER_REPLY
from workflows.payloads import AgentRequest, AgentResult

# A thousand calls in one reply is what was seen; a reply with more than MAX_TOOL_CALLS_PER_REPLY
# is now refused whole (tests/hostile/test_reply_fanout.py), so the flood is the most one reply
# may ask for: the bound under test is the same.
FLOOD = MAX_TOOL_CALLS_PER_REPLY
LIMIT = 5


def support_agent(limit: int) -> str:
    """The support agent (close_ticket gated) with `max_tool_calls = limit`."""
    return SUPPORT_AGENT.replace('mcp_servers = ["tickets"]', f'mcp_servers = ["tickets"]\nmax_tool_calls = {limit}')


def close(n: int) -> dict[str, Any]:
    """A scripted call closing ticket T-n."""
    return {"name": "close_ticket", "arguments": {"ticket_id": f"T-{n}", "resolution": "fixed"}}


async def test_hundreds_of_gated_calls_in_one_turn_ask_only_for_what_the_budget_allows(
    client: Client, tmp_path: Path
) -> None:
    script = {"support": [{"tool_calls": [close(n) for n in range(FLOOD)]}, {"message": "Done."}]}
    project = make_project(tmp_path, agents={"support": support_agent(LIMIT)}, script=script)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close everything.", requester="carol"),
            id=workflow_id("flood"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        pending = await wait_pending(handle, LIMIT)
        assert len(await pending_of(handle)) == LIMIT, "only what the run may still run is put before people"
        assert [p["arguments"]["ticket_id"] for p in pending] == [f"T-{n}" for n in range(LIMIT)]
        for call in pending:
            await handle.signal("reject", decision(call, "alice", reason="one at a time"))
        result = await handle.result()
        assert result.status == "completed"
        audit = await handle.query("audit", result_type=list)
        assert sum(entry["event"] == "requested" for entry in audit) == LIMIT
        outputs = spy.tool_outputs()
        assert len(outputs) == FLOOD
        refused = [text for text in outputs if "(max_tool_calls)" in text]
        assert len(refused) == FLOOD - LIMIT
        told = f"Error: close_ticket was not called: this run may make at most {LIMIT} tool calls"
        assert refused[0].startswith(told)
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
    assert count_writes(project.tickets_db) == 0


async def test_a_gated_call_past_a_spent_budget_stops_the_run_without_asking_anyone(
    client: Client, tmp_path: Path
) -> None:
    reads = [{"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": f"T-{n}"}}} for n in (1, 2)]
    script = {"support": [*reads, {"tool_call": close(1)}, {"message": "Done."}]}
    project = make_project(tmp_path, agents={"support": support_agent(2)}, script=script)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Read, then close.", requester="carol"),
            id=workflow_id("spent"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        # Bounded: before counting at request time, the run waited for an approval that could not run.
        cause = await asyncio.wait_for(failure_of(handle), 60)
        assert cause.type == "BudgetExceededError" and "max_tool_calls (2) exceeded" in cause.message
        audit = await handle.query("audit", result_type=list)
        assert [entry for entry in audit if entry["event"] == "requested"] == [], "nobody was asked"
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
    assert count_writes(project.tickets_db) == 0
