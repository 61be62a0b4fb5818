"""AgentWorkflow end to end: real Temporal, real MCP over stdio and HTTP, scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, wait_pending, workflow_id
from tests.support.tickets_http import TICKETS_TOKEN, tickets_http_server
from workflows.payloads import AgentRequest, AgentResult

READ_SCRIPT = {
    "support": [
        {"tool_call": {"name": "search_tickets", "arguments": {"query": "login"}}},
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "T-1 is about the login page."},
    ]
}


async def test_reads_over_stdio_and_returns_scripted_answer(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=READ_SCRIPT)
    async with airlock_worker(client, project) as activities:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What is T-1 about?", requester="carol"),
            id=workflow_id("read"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()
        # Many calls, one MCP session: the connection is pooled per worker.
        assert activities.pool.connection("tickets").connects == 1
    assert result.output == "T-1 is about the login page."
    assert result.tool_calls == 2
    assert result.usage.requests == 3
    assert result.approvals == []
    await assert_replays(handle)


async def test_reads_over_streamable_http(client: Client, tmp_path: Path) -> None:
    async with tickets_http_server(tmp_path / "http.db") as server:
        servers = f"""
        [servers.tickets]
        transport = "http"
        url = "{server.url}"
        headers = {{ Authorization = "Bearer ${{TICKETS_TOKEN}}" }}
        trust = "trusted"
        """
        project = make_project(tmp_path, script=READ_SCRIPT, servers=servers)
        project.environ["TICKETS_TOKEN"] = server.token or ""
        async with airlock_worker(client, project):
            handle = await client.start_workflow(
                "AgentWorkflow",
                {"agent": "support", "input": "What is T-1 about?", "requester": "carol"},
                id=workflow_id("http"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            result = await handle.result()
    assert result.output == "T-1 is about the login page."
    assert result.tool_calls == 2
    # The header secret is expanded on the worker and never enters history.
    assert TICKETS_TOKEN not in await history_text(handle)
    await assert_replays(handle)


async def test_write_waits_for_approval_then_runs_once(client: Client, tmp_path: Path) -> None:
    script = {
        "support": [
            {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}},
            {"message": "Closed T-1."},
        ]
    }
    project = make_project(tmp_path, script=script)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1", requester="carol"),
            id=workflow_id("gate"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        assert pending["tool"] == "close_ticket"
        assert pending["arguments"] == {"ticket_id": "T-1"}
        assert len(pending["arguments_sha256"]) == 64
        assert count_writes(project.tickets_db) == 0, "nothing is written before approval"
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "alice", "ok")
    await assert_replays(handle)


async def test_unknown_agent_fails_with_typed_error(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=READ_SCRIPT)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            {"agent": "nobody", "input": "hi"},
            id=workflow_id("unknown"),
            task_queue=project.settings.task_queue,
        )
        cause = await failure_of(handle)
    assert cause.type == "UnknownAgentError"
    assert "nobody" in cause.message and "support" in cause.message
    await assert_replays(handle)


@pytest.mark.parametrize(
    "payload",
    [
        {"agent": "support"},
        {"agent": "support", "input": "hi", "colour": "blue"},
        {"agent": 7, "input": "hi"},
    ],
)
async def test_malformed_input_fails_once_with_clear_error(
    client: Client, tmp_path: Path, payload: dict[str, object]
) -> None:
    project = make_project(tmp_path, script=READ_SCRIPT)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            payload,
            id=workflow_id("bad"),
            task_queue=project.settings.task_queue,
        )
        cause = await failure_of(handle)
    assert cause.type == "InvalidInputError"
    assert "invalid AgentWorkflow input" in cause.message
    # A bad input must not put the workflow into a task-retry loop.
    assert_no_task_failures(await handle.fetch_history())
