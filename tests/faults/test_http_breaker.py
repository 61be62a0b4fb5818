"""An MCP server over HTTP that is down for a while: the circuit opens, fails fast, and closes again."""

from __future__ import annotations

import time
from pathlib import Path

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from runtime.devserver import free_port
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server
from workflows.payloads import AgentRequest, AgentResult


def read(ticket: str) -> dict[str, object]:
    """A script step that reads one ticket."""
    return {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": ticket}}}


def pause(text: str) -> dict[str, object]:
    """A script step that asks for a gated write, so the test can act while the run waits."""
    return {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": text}}}


SCRIPT = {
    "support": [
        read("T-1"),
        pause("server up"),
        read("T-1"),
        read("T-2"),
        read("T-3"),
        pause("server down"),
        read("T-4"),
        {"message": "Done."},
    ]
}
COOLDOWN_S = 2.0
# Fail-fast bound for three reads while the server is down. Without the breaker each of them
# would take five attempts with backoff (about 3 s each).
FAIL_FAST_BOUND_S = 4.0


async def test_circuit_opens_while_the_http_server_is_down_and_closes_after_it_returns(
    client: Client, tmp_path: Path
) -> None:
    db, port = tmp_path / "http.db", free_port()
    servers = f"""
    [servers.tickets]
    transport = "http"
    url = "http://127.0.0.1:{port}/mcp"
    {AUTH_HEADER}
    trust = "trusted"
    timeout = "5s"

    [servers.tickets.breaker]
    failures = 2
    window = "30s"
    cooldown = "{COOLDOWN_S}s"
    """
    project = make_project(tmp_path, script=SCRIPT, servers=servers)
    project.environ["TICKETS_TOKEN"] = TICKETS_TOKEN
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        breaker = activities.pool.connection("tickets").breaker
        async with tickets_http_server(db, port=port):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="support", input="Read some tickets.", requester="carol"),
                id=workflow_id("http-breaker"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            [first] = await wait_pending(handle)
        # The server is gone; the run is told no, and reads three tickets from a dead server.
        started = time.monotonic()
        await handle.signal("reject", decision(first, "alice", reason="not now"))

        async def second_pause() -> bool:
            pending = await handle.query("pending_approvals", result_type=list)
            return bool(pending) and pending[0]["call_id"] != first["call_id"]

        await wait_for(second_pause, what="the run to get past the three reads")
        down_for = time.monotonic() - started
        opened, rejected, state_while_down = breaker.opened, breaker.rejected, breaker.state
        [second] = await wait_pending(handle)
        async with tickets_http_server(db, port=port):

            async def half_open() -> bool:
                return breaker.state == "half_open"

            await wait_for(half_open, timeout=COOLDOWN_S + 5, what="the cooldown to end")
            await handle.signal("reject", decision(second, "alice", reason="later"))
            result = await handle.result()
        closed_state, opened_after = breaker.state, breaker.opened
    outputs = model.tool_outputs()
    print(
        f"http breaker: three reads while down in {down_for:.2f}s, opened={opened} rejected={rejected}, "
        f"then {closed_state}; outputs={[o[:90] for o in outputs]}"
    )
    assert result.output == "Done."
    assert down_for < FAIL_FAST_BOUND_S
    assert (opened, state_while_down) == (1, "open")
    # The first read's third attempt and both later reads were refused without a connection.
    assert rejected == 3
    assert "Login page returns 500" in outputs[0]
    assert [("circuit open" in o, "tickets" in o) for o in outputs[2:5]] == [(True, True)] * 3
    assert "Add dark mode to the settings page" in outputs[6], "the half-open probe should have succeeded"
    assert (closed_state, opened_after) == ("closed", 1)
    assert count_writes(db) == 0
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
