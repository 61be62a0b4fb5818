"""A stdio MCP server that dies in the middle of a read: the read is retried on a fresh process."""

from __future__ import annotations

import time
from pathlib import Path

from temporalio.client import Client

from tests.support.conditions import alive
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.mcp_faults import stdio_tickets
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "T-1 is about the login page."},
    ]
}


async def test_read_is_retried_on_a_fresh_process_after_the_server_crashes_mid_call(
    client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed.pid"
    project = make_project(tmp_path, script=SCRIPT, servers=stdio_tickets(keys='timeout = "10s"'))
    project.environ.update(TICKETS_FAULT="crash", TICKETS_FAULT_TOOL="get_ticket", TICKETS_FAULT_MARKER=str(marker))
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        started = time.monotonic()
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What is T-1 about?", requester="carol"),
            id=workflow_id("stdio-crash"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()
        elapsed = time.monotonic() - started
        connection = activities.pool.connection("tickets")
        connects, breaker = connection.connects, connection.breaker.state
    print(f"stdio crash: connects={connects} elapsed={elapsed:.2f}s breaker={breaker}")
    assert result.output == "T-1 is about the login page."
    # The first child took the call and died (it wrote its pid first); a second one answered.
    crashed = int(marker.read_text())
    assert not alive(crashed)
    assert connects == 2
    assert breaker == "closed"
    [output] = model.tool_outputs()
    assert "Login page returns 500 after password reset" in output
    assert result.tool_calls == 1
    assert elapsed < 15
    history = await handle.fetch_history()
    assert_no_task_failures(history)
    await assert_replays(handle)
