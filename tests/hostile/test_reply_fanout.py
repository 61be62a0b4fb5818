"""One model reply asking for a thousand tool calls ends the run typed, instead of stalling it.

Real Temporal, the bundled tickets server over stdio, the scripted model playing a hostile
model: one reply asks for 1,000 (or 2,000) reads at once. The Agents SDK handles a reply's calls
in one workflow task; before the fix that task took longer than Temporal's 2 s deadlock timeout
and was retried for ever, the run stalled Running. Now the model activity refuses a reply with
more than `MAX_TOOL_CALLS_PER_REPLY` calls before it is recorded: a `ModelError` naming the limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.support.histories import assert_no_task_failures, assert_replays, history_payloads
from tests.support.project import SUPPORT_AGENT, airlock_worker, make_project
from tests.support.runs import failure_of, workflow_id
from workflows.limits import MAX_TOOL_CALLS_PER_REPLY
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 60.0
# The run's own budget is set past the flood, so only the per-reply limit can stop it.
AGENT = SUPPORT_AGENT.replace('mcp_servers = ["tickets"]', 'mcp_servers = ["tickets"]\nmax_tool_calls = 10000')


def read(n: int) -> dict[str, Any]:
    """A scripted auto call reading ticket T-n."""
    return {"name": "get_ticket", "arguments": {"ticket_id": f"T-{n}"}}


@pytest.mark.parametrize("fanout", [1_000, 2_000])
async def test_a_reply_with_a_thousand_tool_calls_ends_the_run_naming_the_limit(
    client: Client, tmp_path: Path, fanout: int
) -> None:
    script = {"support": [{"tool_calls": [read(n) for n in range(fanout)]}, {"message": "Done."}]}
    project = make_project(tmp_path, agents={"support": AGENT}, script=script)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Read everything.", requester="carol"),
            id=workflow_id("fanout"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        failure = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert failure.type == "ModelError"
    assert f"has {fanout} tool calls, over the limit of {MAX_TOOL_CALLS_PER_REPLY}" in failure.message
    history = await handle.fetch_history()
    payloads = history_payloads(history.to_json())
    assert not any(b"T-999" in payload for payload in payloads), "the reply was refused before it was recorded"
    assert_no_task_failures(history)
    await assert_replays(handle)
