"""MCP progress reaches people: `status` names the call in flight, `show` and `run --follow` its progress.

Over stdio with the test server of tests/support/long_mcp.py, over streamable HTTP with
server-everything's `trigger-long-running-operation`; and a server that floods bogus progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.progress import MAX_MESSAGE_CHARS, CallProgress
from console.progress import progress_by_call
from mcp_servers.client.registry import McpPool, load_servers
from tests.support.airlock_cli import address_of, airlock
from tests.support.conditions import wait_for
from tests.support.everything import everything_http, everything_servers
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.long_running import AGENT, events_of, long_servers
from tests.support.project import airlock_worker, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult, RunStatus


async def test_status_names_the_call_and_show_prints_its_progress_over_stdio(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    # Temporal sends heartbeats at most every 4 s (0.8 x the 5 s heartbeat timeout): the call runs 7 s.
    script = {
        "worker": [
            {"tool_call": {"name": "slow", "arguments": {"steps": 12, "step_seconds": 0.6}}},
            {"message": "done"},
        ]
    }
    project = make_project(
        tmp_path,
        agents={"worker": AGENT.format(name="worker", server="long")},
        script=script,
        servers=long_servers(events),
    )
    project.environ["LONG_EVENTS"] = str(events)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="worker", input="go", requester="carol"),
            id=workflow_id("progress"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )

        async def in_flight() -> RunStatus | None:
            status: RunStatus = await handle.query("status", result_type=RunStatus)
            return status if status.in_flight else None

        status = await wait_for(in_flight, what="the call in flight in status")
        [call] = status.in_flight
        assert (call.server, call.tool) == ("long", "slow")

        async def progressed() -> dict[str, Any] | None:
            found = (await progress_by_call(client, handle)).get(call.call_id)
            return found if found and found.get("progress", 0) >= 2 else None

        details = await wait_for(progressed, what="progress in the pending activity's heartbeat")
        assert details["total"] == 12 and details["message"].endswith("of 12")
        shown = await airlock("--address", address_of(temporal_env), "show", handle.id, home=tmp_path)
        assert shown.code == 0, shown.describe()
        assert f"long.slow ({call.call_id}): " in shown.out
        assert "/12 step " in shown.out, shown.out
        result = await handle.result()
        final: RunStatus = await handle.query("status", result_type=RunStatus)
    assert result.status == "completed"
    assert final.in_flight == []
    assert [e["event"] for e in events_of(events)].count("step") == 12
    await assert_replays(handle)


async def test_run_follow_shows_progress_of_a_third_party_server_over_http(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    script = {
        "worker": [
            {"tool_call": {"name": "trigger-long-running-operation", "arguments": {"duration": 10, "steps": 10}}},
            {"message": "done"},
        ]
    }
    async with everything_http(tmp_path / "everything.log") as url:
        project = make_project(
            tmp_path,
            agents={"worker": AGENT.format(name="worker", server="everything")},
            script=script,
            servers=everything_servers(url, extra="long_running = true"),
        )
        async with airlock_worker(client, project):
            ran = await airlock(
                "--address",
                address_of(temporal_env),
                "run",
                "worker",
                "go",
                "--follow",
                home=tmp_path,
                env={"AIRLOCK_TASK_QUEUE": project.settings.task_queue},
                timeout=90,
            )
    assert ran.code == 0, ran.describe()
    lines = [line for line in ran.out.splitlines() if "everything.trigger-long-running-operation" in line]
    # Said once per change: at least two distinct progress values were seen while it ran.
    assert sum("/10" in line for line in lines) >= 2, ran.out
    assert len(lines) == len(set(lines)), "a progress line is said only when it changes"


async def test_a_progress_flood_with_bogus_values_stays_bounded(client: Client, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    (tmp_path / "servers.toml").write_text(long_servers(events))
    pool = McpPool(load_servers(tmp_path / "servers.toml", {}), {"LONG_EVENTS": str(events)})
    progress = CallProgress("call-1", "long", "flood", lambda text: text.replace("bogus", "[scrubbed]"))
    try:
        result = await pool.connection("long").call_tool("flood", {"count": 2000}, None, progress=progress)
    finally:
        await pool.close()
    assert not result.is_error
    assert progress.received == 2000
    # Negative, not increasing and non-increasing repeats are dropped; what is kept is sane.
    assert progress.ignored >= 1999
    assert progress.details["progress"] >= 0
    assert progress.details["total"] is None  # every total it sent was below its progress
    assert len(progress.details["message"]) <= MAX_MESSAGE_CHARS

    # Through a worker: the run completes, and none of the 100 kB messages reach the history.
    script = {"worker": [{"tool_call": {"name": "flood", "arguments": {"count": 2000}}}, {"message": "done"}]}
    project = make_project(
        tmp_path / "run",
        agents={"worker": AGENT.format(name="worker", server="long")},
        script=script,
        servers=long_servers(events),
    )
    project.environ["LONG_EVENTS"] = str(events)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="worker", input="go", requester="carol"),
            id=workflow_id("flood"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result_of_run = await handle.result()
    assert result_of_run.status == "completed"
    assert "p" * 1000 not in await history_text(handle)
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
