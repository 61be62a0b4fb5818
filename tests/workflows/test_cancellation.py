"""A cancelled run cancels its MCP request in flight: the server gets `notifications/cancelled`.

The server is tests/support/long_mcp.py over stdio; it writes down what it saw, so the test
checks the server's side, not Airlock's belief. Three ways a call runs: a read as a local
activity, a read of a `long_running` server as a heartbeating activity, and a write activity.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.long_running import AGENT, events_of, long_servers
from tests.support.project import airlock_worker, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

PATHS = {
    "local read": {"long_running": False, "trust": "trusted", "tools": ""},
    "long_running read": {"long_running": True, "trust": "trusted", "tools": ""},
    "write": {"long_running": False, "trust": "untrusted", "tools": '[tools]\n"*" = "auto"\n'},
}


def _project(tmp_path: Path, events: Path, script: list[dict[str, Any]], path: dict[str, Any]) -> Any:
    agent = AGENT.format(name="worker", server="long") + path["tools"]
    project = make_project(
        tmp_path,
        agents={"worker": agent},
        script={"worker": script},
        servers=long_servers(events, long_running=path["long_running"], trust=path["trust"]),
    )
    project.environ["LONG_EVENTS"] = str(events)
    return project


async def _started(events: Path, tool: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        return next((e for e in events_of(events) if e["event"] == "started" and e["tool"] == tool), None)

    return await wait_for(check, what=f"the server to start {tool}")


@pytest.mark.parametrize("how", list(PATHS))
async def test_cancelling_a_run_cancels_its_request_on_the_server(client: Client, tmp_path: Path, how: str) -> None:
    events = tmp_path / "events.jsonl"
    script = [{"tool_call": {"name": "wait_forever", "arguments": {}}}, {"message": "never"}]
    project = _project(tmp_path, events, script, PATHS[how])
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="worker", input="go", requester="carol"),
            id=workflow_id("cancel"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        started = await _started(events, "wait_forever")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

        async def cancelled() -> dict[str, Any] | None:
            return next((e for e in events_of(events) if e["event"] == "cancelled"), None)

        seen = await wait_for(cancelled, timeout=15, what="notifications/cancelled to reach the server")
        status = await handle.query("status", result_type=dict)
    assert isinstance(failure.value.cause, CancelledError)
    assert seen["request_id"] == started["request_id"], "the server cancelled the very request the run made"
    assert status["state"] == "cancelled"
    await assert_replays(handle)


async def test_a_server_that_ignores_cancellation_does_not_hold_the_run(client: Client, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    script = [{"tool_call": {"name": "stubborn", "arguments": {"seconds": 20}}}, {"message": "never"}]
    project = _project(tmp_path, events, script, PATHS["long_running read"])
    async with airlock_worker(client, project) as activities:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="worker", input="go", requester="carol"),
            id=workflow_id("stubborn"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        await _started(events, "stubborn")
        asked = time.monotonic()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        took = time.monotonic() - asked
        finished = [e for e in events_of(events) if e["event"] == "finished" and e["tool"] == "stubborn"]
        # The session survives the abandoned request: the next call on it works.
        connection = activities.pool.connection("long")
        after = await connection.call_tool("slow", {"steps": 1, "step_seconds": 0.01}, None)
    assert took < 15, f"the run waited {took:.1f}s for a server that never honours cancellation"
    assert finished == [], "the run ended while the server was still working on the request"
    assert not after.is_error
    assert connection.connects == 1
