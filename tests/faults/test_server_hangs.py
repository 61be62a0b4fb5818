"""An MCP server that accepts a call and never answers: the call times out and the run ends."""

from __future__ import annotations

import time
from pathlib import Path

from temporalio.client import Client

from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.mcp_faults import stdio_tickets
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"message": "The tickets server is not answering."},
    ]
}
TIMEOUT_S = 1.0
# Two timed-out attempts open the circuit; a third attempt and the next read are refused at once.
BREAKER = '[servers.tickets.breaker]\nfailures = 2\nwindow = "30s"\ncooldown = "30s"'


async def test_a_server_that_never_answers_times_out_trips_the_breaker_and_the_run_ends(
    client: Client, tmp_path: Path
) -> None:
    servers = stdio_tickets(keys=f'timeout = "{TIMEOUT_S}s"\n{BREAKER}')
    project = make_project(tmp_path, script=SCRIPT, servers=servers)
    project.environ.update(TICKETS_FAULT="hang", TICKETS_FAULT_TOOL="get_ticket")
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        started = time.monotonic()
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What are T-1 and T-2 about?", requester="carol"),
            id=workflow_id("hang"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result(rpc_timeout=None)
        elapsed = time.monotonic() - started
        breaker = activities.pool.connection("tickets").breaker
        opened, rejected, state = breaker.opened, breaker.rejected, breaker.state
    outputs = model.tool_outputs()
    print(f"hang: elapsed={elapsed:.2f}s opened={opened} rejected={rejected} state={state} outputs={outputs}")
    assert result.output == "The tickets server is not answering."
    # Two timeouts, two process starts and the retry backoff; without the breaker each read
    # would run five attempts (about 13 s each).
    assert elapsed < 15, "the run must end soon after the timeouts, not hang"
    assert (opened, state) == (1, "open")
    assert rejected >= 2
    assert len(outputs) == 2
    # The first read timed out twice (opening the circuit) and its third attempt was refused; the
    # second read was refused at once.
    assert all("tickets.get_ticket is unavailable" in o and "circuit open" in o for o in outputs)
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
