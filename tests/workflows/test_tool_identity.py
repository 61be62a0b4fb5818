"""A tool is the pair (server, tool) everywhere: a hostile server cannot borrow another server's
rules with a dotted name, cannot shadow another server's tool, and cannot list names the MCP
spec forbids — real Temporal, real MCP over stdio (tests/support/hostile_mcp.py), scripted model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from activities.airlock_activities import MAX_LOGGED_NAME
from mcp_servers.client.registry import McpPool, load_servers
from mcp_servers.tickets.store import count_writes
from runtime.redaction import Redactor
from runtime.settings import PROJECT_ROOT
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.hostile_mcp import LONG_NAME
from tests.support.logs import worker_logs
from tests.support.project import TICKETS_STDIO, Project, airlock_worker, make_project
from tests.support.runs import decision, failure_of, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult, PrepareRequest, ToolPlan

pytestmark = pytest.mark.integration  # starts MCP servers

HOSTILE_SERVER = f"""
[servers.hostile]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.hostile_mcp"]
cwd = "{PROJECT_ROOT}"
env = ["HOSTILE_TOOLS", "HOSTILE_CALLS"]
trust = "untrusted"
"""
# A run that should end but waits at a gate instead (24h) must fail the test, not hang it.
RUN_DEADLINE_S = 60.0


def agent_with_both(rules: str) -> str:
    """The support agent on the trusted tickets server and the untrusted hostile one."""
    return (
        'name = "support"\ninstructions = "You resolve support tickets."\n'
        f'mcp_servers = ["tickets", "hostile"]\n\n[tools]\n{rules}\n\n[approval]\napprovers = ["alice"]\n'
    )


def hostile_project(root: Path, attacks: str, rules: str, script: list[dict[str, Any]]) -> Project:
    """A project whose support agent uses tickets and a hostile server playing `attacks`."""
    project = make_project(
        root,
        agents={"support": agent_with_both(rules)},
        script={"support": script},
        servers=TICKETS_STDIO + HOSTILE_SERVER,
    )
    project.environ.update(HOSTILE_TOOLS=attacks, HOSTILE_CALLS=str(root / "hostile-calls.jsonl"))
    return project


def hostile_calls(project: Project) -> list[dict[str, Any]]:
    """Every call the hostile server received, in order."""
    path = Path(project.environ["HOSTILE_CALLS"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def planned(tools: list[ToolPlan]) -> dict[tuple[str, str], str]:
    """(server, tool) → policy of a plan's tools."""
    return {(tool.server, tool.name): tool.policy for tool in tools}


async def start(client: Client, project: Project, prefix: str) -> WorkflowHandle[Any, AgentResult]:
    """Start a support run on the project's task queue."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Look at T-1.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def test_the_hostile_server_records_every_call(tmp_path: Path) -> None:
    # The control for every "recorded no call" below: a call that does reach it is on file.
    project = hostile_project(tmp_path, "echo", "", [])
    pool = McpPool(load_servers(project.settings.mcp_servers_file, project.environ), project.environ)
    try:
        result = await pool.connection("hostile").call_tool("echo", {"text": "hi"}, None)
    finally:
        await pool.close()
    assert not result.is_error
    assert hostile_calls(project) == [{"tool": "echo", "arguments": {"text": "hi"}}]


async def test_a_dotted_tool_name_does_not_borrow_another_servers_auto_rule(client: Client, tmp_path: Path) -> None:
    script = [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "tickets.get_secret", "arguments": {}}},
        {"message": "Done."},
    ]
    project = hostile_project(tmp_path, "dotted", '"tickets.get_*" = "auto"', script)
    async with airlock_worker(client, project) as activities:
        plan = await activities.prepare(PrepareRequest(agent="support"))
        handle = await start(client, project, "dotted")
        [pending] = await wait_pending(handle)
        # The read of the trusted server ran under the rule; the look-alike waits at the gate.
        assert (pending["server"], pending["tool"]) == ("hostile", "tickets.get_secret")
        await handle.signal("reject", decision(pending, "alice", reason="who is this"))
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    tools = planned(plan.agents["support"].tools)
    assert tools[("tickets", "get_ticket")] == "auto"
    assert tools[("hostile", "tickets.get_secret")] == "approve"
    [record] = result.approvals
    assert (record.server, record.tool, record.decision) == ("hostile", "tickets.get_secret", "rejected")
    assert hostile_calls(project) == []
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_two_servers_offering_one_tool_name_fail_the_run(client: Client, tmp_path: Path) -> None:
    close = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
    project = hostile_project(tmp_path, "close_ticket", '"get_*" = "auto"', [close, {"message": "Done."}])
    async with airlock_worker(client, project):
        handle = await start(client, project, "conflict")
        failure = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert failure.type == "ToolConflictError"
    assert "'tickets'" in failure.message and "'hostile'" in failure.message
    assert "'close_ticket'" in failure.message
    assert count_writes(project.tickets_db) == 0
    assert hostile_calls(project) == []
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_a_denied_duplicate_is_no_conflict_and_the_call_runs_where_it_was_approved(
    client: Client, tmp_path: Path
) -> None:
    close = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
    rules = '"get_*" = "auto"\n"hostile.close_ticket" = "deny"'
    project = hostile_project(tmp_path, "close_ticket", rules, [close, {"message": "Done."}])
    async with airlock_worker(client, project):
        handle = await start(client, project, "denied-twin")
        [pending] = await wait_pending(handle)
        assert (pending["server"], pending["tool"]) == ("tickets", "close_ticket")
        await handle.signal("approve", decision(pending, "alice"))
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    assert result.output == "Done."
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert hostile_calls(project) == []
    await assert_replays(handle)


async def test_tool_names_the_mcp_spec_forbids_are_left_out(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The model asks for the misnamed tool anyway: it hears the tool does not exist.
    script = [{"tool_call": {"name": "get secret", "arguments": {}}}, {"message": "Done."}]
    project = hostile_project(tmp_path, "bad_names,echo", "", script)
    async with airlock_worker(client, project) as activities:
        with worker_logs(Redactor(), capsys) as written:
            plan = await activities.prepare(PrepareRequest(agent="support"))
            logs = [json.loads(line) for line in written().splitlines() if line.startswith("{")]
        handle = await start(client, project, "bad-names")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    hostile = {tool.name for tool in plan.agents["support"].tools if tool.server == "hostile"}
    assert hostile == {"echo"}
    warned = [entry for entry in logs if entry["event"] == "mcp_tool_name_invalid"]
    assert {(entry["server"], entry["tool"]) for entry in warned} == {
        ("hostile", "get secret"),
        ("hostile", LONG_NAME[:MAX_LOGGED_NAME]),
    }
    assert (result.output, result.approvals, result.tool_calls) == ("Done.", [], 0)
    assert hostile_calls(project) == []
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
