"""Listing what waits at scale (console/waiting.py): visibility read page by page while runs are
asked, and runs on a task queue no worker polls skipped at once instead of each waiting out its
query timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from console.waiting import waiting_calls
from tests.support.conditions import wait_for
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from workflows.payloads import AgentRequest

STATE = SearchAttributeKey.for_keyword("AirlockState")
AGENT = SearchAttributeKey.for_keyword("AirlockAgent")
UNPOLLED_RUNS = 30
GATED_RUNS = 12


def closer(name: str) -> str:
    """An agent whose close_ticket waits for alice."""
    return f"""
name = "{name}"
instructions = "Close the ticket."
mcp_servers = ["tickets"]
[tools]
close_ticket = "approve"
[approval]
approvers = ["alice"]
"""


async def listed_count(client: Client, agent: str) -> int:
    """How many runs of `agent` visibility lists as waiting."""
    query = f'AirlockState="awaiting_approval" AND ExecutionStatus="Running" AND AirlockAgent="{agent}"'
    return (await client.count_workflows(query)).count


async def test_runs_on_a_queue_no_worker_polls_are_skipped_at_once(client: Client) -> None:
    agent = f"unpolled{uuid.uuid4().hex[:8]}"
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    marked = TypedSearchAttributes([SearchAttributePair(STATE, "awaiting_approval"), SearchAttributePair(AGENT, agent)])
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent=agent, input="hello", requester="carol"),
                id=workflow_id("unpolled"),
                task_queue=queue,
                search_attributes=marked,
            )
            for _ in range(UNPOLLED_RUNS)
        )
    )
    try:
        await wait_for(lambda: _at_least(client, agent, UNPOLLED_RUNS), what="runs listed as waiting")
        skipped: list[tuple[str, str]] = []
        began = time.monotonic()
        calls = await waiting_calls(
            client, agent=agent, wait=timedelta(seconds=10), on_skip=lambda wf, why: skipped.append((wf, why))
        )
        took = time.monotonic() - began
        assert calls == []
        assert sorted(wf for wf, _ in skipped) == sorted(h.id for h in handles)
        assert {why for _, why in skipped} == {f"no worker polls task queue {queue!r} to answer pending_approvals"}
        # Each query would have waited out its 10 s timeout: 30 runs, 20 s at the least.
        assert took < 5, f"listing took {took:.1f}s"
    finally:
        await asyncio.gather(*(h.terminate("test over") for h in handles))


async def _at_least(client: Client, agent: str, count: int) -> bool:
    return await listed_count(client, agent) >= count


async def test_every_waiting_run_is_listed_across_visibility_pages(client: Client, tmp_path: Path) -> None:
    agent = f"closer{uuid.uuid4().hex[:8]}"
    script = {
        agent: [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
            {"message": "Closed."},
        ]
    }
    project = make_project(tmp_path, agents={agent: closer(agent)}, script=script)
    async with airlock_worker(client, project):
        handles = [
            await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent=agent, input="Close T-1.", requester="carol"),
                id=workflow_id("paged"),
                task_queue=project.settings.task_queue,
            )
            for _ in range(GATED_RUNS)
        ]
        try:
            for handle in handles:
                await wait_pending(handle)
            await wait_for(lambda: _at_least(client, agent, GATED_RUNS), what="runs listed as waiting")
            skipped: list[tuple[str, str]] = []
            calls = await waiting_calls(
                client, agent=agent, page_size=5, on_skip=lambda wf, why: skipped.append((wf, why))
            )
            assert skipped == []
            assert sorted(c["workflow_id"] for c in calls) == sorted(h.id for h in handles)
            assert all(c["tool"] == "close_ticket" and c["approve_command"] for c in calls)
            requested = [c["requested_at"] for c in calls]
            assert requested == sorted(requested), "oldest first"
        finally:
            await asyncio.gather(*(h.terminate("test over") for h in handles))
