"""Budgets end a run with BudgetExceededError and a useful partial result."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import SUPPORT_AGENT, airlock_worker, make_project
from tests.support.runs import failure_of, workflow_id

READS = {
    "support": [{"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": f"T-{n}"}}} for n in range(1, 5)]
    + [{"message": "done"}]
}


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("max_tool_calls = 2", "max_tool_calls (2) exceeded"),
        ("max_turns = 2", "max_turns (2) exceeded"),
    ],
)
async def test_budget_ends_run_with_partial_result(client: Client, tmp_path: Path, limit: str, expected: str) -> None:
    agent = SUPPORT_AGENT.replace('mcp_servers = ["tickets"]', f'mcp_servers = ["tickets"]\n{limit}')
    project = make_project(tmp_path, agents={"support": agent}, script=READS)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            {"agent": "support", "input": "read everything", "requester": "carol"},
            id=workflow_id("budget"),
            task_queue=project.settings.task_queue,
        )
        cause = await failure_of(handle)
    assert cause.type == "BudgetExceededError"
    assert expected in cause.message
    [partial] = cause.details
    assert partial["tool_calls"] == 2, "the partial result says how far the run got"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
