"""Servers a run depends on go away while it is in flight: Temporal itself, or an MCP server.

The Temporal dev server is a dedicated one, not the session's, so stopping it disturbs no other
test. At the stop one run waits for approval and another's approved write has reached the
tickets server, which holds its answer; the worker keeps its own client, reconnects by itself,
and both runs complete with each write applied once. An MCP server that is gone is reported to
the model (a read) or ends the run with a typed error (preparing the agent).
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from runtime import devserver
from tests.support.approvals import CLOSE_SCRIPT
from tests.support.conditions import alive, condition, wait_for
from tests.support.fault_stubs import RoutedStub
from tests.support.histories import assert_no_task_failures, assert_replays, events_with
from tests.support.mcp_faults import hold_answer, stdio_tickets
from tests.support.openai_stub import Text, ToolCalls
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, wait_pending, workflow_id
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # starts and restarts its own dev server

RUN_DEADLINE_S = 60.0
# Long enough that the server is stopped and started again while the write's answer is held.
REPLY_DELAY_S = 3


async def test_runs_complete_after_the_temporal_server_restarts(tmp_path: Path) -> None:
    servers = stdio_tickets()
    project = make_project(tmp_path, script=CLOSE_SCRIPT, servers=servers)
    project.environ.update(hold_answer("close_ticket", REPLY_DELAY_S))
    db_file, port = tmp_path / "temporal" / "temporal.db", devserver.free_port()
    first = await devserver.start(db_file=db_file, port=port)
    running = first
    try:
        # The worker's own connection, which must outlive the first server process.
        worker_client = await Client.connect(f"127.0.0.1:{port}", data_converter=devserver.data_converter())
        async with airlock_worker(worker_client, project):
            waiting, writing = [
                await first.client.start_workflow(
                    "AgentWorkflow",
                    AgentRequest(agent="support", input=f"Close T-1 ({name}).", requester="carol"),
                    id=workflow_id(f"restart-{name}"),
                    task_queue=project.settings.task_queue,
                    result_type=AgentResult,
                )
                for name in ("waiting", "writing")
            ]
            [waiting_call] = await wait_pending(waiting)
            [writing_call] = await wait_pending(writing)
            await writing.signal("approve", decision(writing_call, "alice"))

            async def write_applied() -> bool:
                return count_writes(project.tickets_db, "close_ticket") == 1

            await wait_for(write_applied, what="the approved write to reach the tickets server")
            stopped_at = datetime.now(UTC)
            await first.shutdown()
            second = running = await devserver.start(db_file=db_file, port=port)

            again = second.client
            waiting, writing = (again.get_workflow_handle(h.id, result_type=AgentResult) for h in (waiting, writing))
            assert [p["call_id"] for p in await wait_pending(waiting)] == [waiting_call["call_id"]]
            await waiting.signal("approve", decision(waiting_call, "bob"))
            results = [await asyncio.wait_for(h.result(), RUN_DEADLINE_S) for h in (waiting, writing)]
        for result in results:
            assert result.output == "Done."
            assert [(r.decision, r.outcome) for r in result.approvals] == [("approved", "ok")]
        assert count_writes(project.tickets_db, "close_ticket") == 2, "one close per run, none repeated"
        history = await writing.fetch_history()
        [completed] = events_with(history, "activity_task_completed_event_attributes")
        assert completed.event_time.ToDatetime(UTC) > stopped_at, "the write finished across the restart"
        for handle in (waiting, writing):
            await assert_replays(handle)
    finally:
        await running.shutdown()


# --- an MCP server that is gone -------------------------------------------------------------------
# Not a crash test (tests/faults of the MCP work covers those): these pin down that a local
# activity which fails for good reaches the workflow as a handled failure, not as the run's end.


def http_tickets(url: str) -> str:
    """`servers.toml` with the tickets server over streamable HTTP, sending its bearer token."""
    return f'[servers.tickets]\ntransport = "http"\nurl = "{url}"\n{AUTH_HEADER}\ntrust = "trusted"\ntimeout = "5s"\n'


async def test_a_read_from_a_server_that_is_gone_is_reported_to_the_model(client: Client, tmp_path: Path) -> None:
    stub = RoutedStub(
        {"gone": [ToolCalls([("get_ticket", {"ticket_id": "T-1"})]), Text("The tracker is down.")]}, hold={("gone", 0)}
    )
    stub.start()
    try:
        async with tickets_http_server(tmp_path / "http.db") as server:
            project = make_project(
                tmp_path,
                servers=http_tickets(server.url),
                model_provider="openai",
                openai_api_key="sk-test-gone",
                openai_base_url=stub.base_url,
            )
            project.environ["TICKETS_TOKEN"] = TICKETS_TOKEN
            async with airlock_worker(client, project):
                handle = await client.start_workflow(
                    "AgentWorkflow",
                    AgentRequest(agent="support", input="[route:gone] What is T-1?", requester="carol"),
                    id=workflow_id("mcp-gone"),
                    task_queue=project.settings.task_queue,
                    result_type=AgentResult,
                )
                await wait_for(condition(lambda: stub.count("gone") == 1), what="the first model call, held")
                await server_stopped(server.pid)
                stub.release()
                result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    finally:
        stub.stop()
    assert result.output == "The tracker is down."
    told = [item["output"] for item in stub.requests[-1]["input"] if item.get("type") == "function_call_output"]
    assert len(told) == 1 and "tickets.get_ticket is unavailable" in told[0], told
    assert stub.seen == [("gone", 0), ("gone", 0), ("gone", 1)], "held, retried, then told"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_an_agent_whose_server_is_gone_fails_with_tool_unavailable_error(client: Client, tmp_path: Path) -> None:
    async with tickets_http_server(tmp_path / "http.db") as server:
        url = server.url
    # The server has exited: preparing the agent cannot list its tools.
    project = make_project(tmp_path, servers=http_tickets(url))
    project.environ["TICKETS_TOKEN"] = TICKETS_TOKEN
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What is T-1?", requester="carol"),
            id=workflow_id("mcp-gone-prepare"),
            task_queue=project.settings.task_queue,
        )
        cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert cause.type == "ToolUnavailableError", cause.type
    assert "could not prepare agent 'support'" in cause.message and "tickets" in cause.message
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def server_stopped(pid: int) -> None:
    """SIGTERM a server the test started and wait until its pid is gone."""
    os.kill(pid, signal.SIGTERM)
    await wait_for(condition(lambda: not alive(pid)), what=f"pid {pid} to exit")
