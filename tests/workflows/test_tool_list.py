"""The tool list a run sees: kept while the session would hear a change, listed again after one
(so a change re-applies the policy) and for every run of a server that cannot announce changes;
tools that require task-augmented execution hidden from the model, said once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client

from runtime.redaction import Redactor
from tests.support.airlock_cli import airlock
from tests.support.conditions import condition, wait_for
from tests.support.everything import everything_http, everything_servers
from tests.support.histories import assert_replays
from tests.support.logs import worker_logs
from tests.support.long_running import AGENT, events_of, long_servers
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult, PrepareRequest

TASK_TOOL = "simulate-research-query"


async def test_tools_that_require_tasks_are_hidden_and_said_once(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        project = make_project(
            tmp_path,
            agents={"worker": AGENT.format(name="worker", server="everything")},
            servers=everything_servers(url),
        )
        with worker_logs(Redactor(), capsys) as logged:
            async with airlock_worker(client, project) as activities:
                connection = activities.pool.connection("everything")
                listed = await connection.list_tools()
                first = await activities.prepare(PrepareRequest(agent="worker"))
                second = await activities.prepare(PrepareRequest(agent="worker"))
                listings = connection.listings
            text = logged()
        env = {"AIRLOCK_MCP_SERVERS_FILE": str(project.settings.mcp_servers_file)}
        shown = (await airlock("mcp", "tools", "everything", "-o", "json", home=tmp_path, env=env)).json()
        table = await airlock("mcp", "tools", "everything", home=tmp_path, env=env)
    # The premise: the server offers a tool whose execution.taskSupport is "required".
    task_tool = next(t for t in listed if t.name == TASK_TOOL)
    assert task_tool.execution is not None and task_tool.execution.task_support == "required"
    for plan in (first, second):
        names = {tool.name for tool in plan.agents["worker"].tools}
        assert TASK_TOOL not in names
        assert "get-sum" in names  # the server's other tools are still offered
    # Over HTTP the worker holds no stream on which a newer server could announce a change.
    assert listings == 3
    warnings = [json.loads(line) for line in text.splitlines() if '"mcp_tool_hidden"' in line]
    assert len(warnings) == 1, text
    assert warnings[0]["server"] == "everything" and warnings[0]["tool"] == TASK_TOOL
    assert {row["name"]: row["policy"] for row in shown}[TASK_TOOL] == "hidden (requires tasks)"
    assert any(line.startswith(TASK_TOOL) and "hidden (requires tasks)" in line for line in table.out.splitlines())


async def test_a_changed_tool_is_gated_again_for_the_next_run(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = tmp_path / "events.jsonl"
    script = {
        "worker": [
            {"tool_call": {"name": "target", "arguments": {"text": "{input}"}}},
            {"tool_call": {"name": "flip", "arguments": {}}},
            {"message": "flipped"},
        ]
    }
    project = make_project(
        tmp_path,
        agents={"worker": AGENT.format(name="worker", server="long")},
        script=script,
        servers=long_servers(events),
    )
    project.environ["LONG_EVENTS"] = str(events)
    with worker_logs(Redactor(), capsys) as logged:
        async with airlock_worker(client, project) as activities:
            first = await client.execute_workflow(
                "AgentWorkflow",
                AgentRequest(agent="worker", input="one", requester="carol"),
                id=workflow_id("list-1"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            second = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="worker", input="two", requester="carol"),
                id=workflow_id("list-2"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            [pending] = await wait_pending(second)
            await second.terminate("test done")
            listings = activities.pool.connection("long").listings
        text = logged()
    # Run one: `target` was read-only, so it ran without a gate; then the server changed it.
    assert first.status == "completed" and first.approvals == []
    assert [e["event"] for e in events_of(events)] == ["flipped"]
    # Run two: the same session, a fresh listing; `target` is destructive now and waits for a person.
    assert (pending["server"], pending["tool"]) == ("long", "target")
    assert text.count('"mcp_connected"') == 1, "the same session served both runs"
    assert text.count('"mcp_tools_changed"') == 1, "the worker heard the server announce the change"
    assert listings == 2, "the change made the second run list the tools again"
    await assert_replays(second)


async def test_a_list_changed_storm_changes_nothing(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = tmp_path / "events.jsonl"
    script = {"worker": [{"tool_call": {"name": "storm", "arguments": {"count": 1000}}}, {"message": "calm"}]}
    project = make_project(
        tmp_path,
        agents={"worker": AGENT.format(name="worker", server="long")},
        script=script,
        servers=long_servers(events),
    )
    project.environ["LONG_EVENTS"] = str(events)
    with worker_logs(Redactor(), capsys) as logged:
        async with airlock_worker(client, project) as activities:
            stormy = await client.execute_workflow(
                "AgentWorkflow",
                AgentRequest(agent="worker", input="go", requester="carol"),
                id=workflow_id("storm"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            connection = activities.pool.connection("long")
            await wait_for(condition(lambda: connection.tools_changed), what="the storm to be heard")
            plan = await activities.prepare(PrepareRequest(agent="worker"))
            connects = connection.connects
        text = logged()
    assert stormy.status == "completed"
    assert [e.get("count") for e in events_of(events) if e["event"] == "stormed"] == [1000]
    # The session survived the storm and the next listing is the server's list, unchanged.
    assert connects == 1
    assert {t.name for t in plan.agents["worker"].tools} == {
        "slow",
        "wait_forever",
        "stubborn",
        "flood",
        "flip",
        "storm",
        "target",
        "huge_image",
    }
    # One line until the next listing clears it (events still in transit then may add one more).
    assert 1 <= text.count('"mcp_tools_changed"') <= 2, text.count('"mcp_tools_changed"')


async def test_a_session_that_would_hear_a_change_keeps_its_list(client: Client, tmp_path: Path) -> None:
    # The bundled tickets server over stdio: a newer session, with its listen stream held open.
    project = make_project(tmp_path)
    async with airlock_worker(client, project) as activities:
        connection = activities.pool.connection("tickets")
        plans = [await activities.prepare(PrepareRequest(agent="support"))]
        await wait_for(condition(lambda: connection.hears_changes), what="the listen stream to be honoured")
        # A listing made before the stream was honoured is not kept: this one lists again, or not.
        plans.append(await activities.prepare(PrepareRequest(agent="support")))
        settled = connection.listings
        plans += [await activities.prepare(PrepareRequest(agent="support")) for _ in range(3)]
        listings = connection.listings
    assert listings == settled <= 2
    assert all(plan == plans[0] for plan in plans)
    assert {tool.name for tool in plans[0].agents["support"].tools} >= {"get_ticket", "close_ticket"}
