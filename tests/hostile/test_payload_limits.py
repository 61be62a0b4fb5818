"""What a hostile MCP server or model sends too big ends typed or bounded, never a run that is wedged.

The server (tests/support/big_mcp.py, over stdio) streams what it sends without holding it: a 5 MB
tool description, an oversized schema, 10,000 tools, a plan over its budget, a 200 MB result, 16 MB
as 400,000 one-character parts. The scripted model answers one 10 MB tool-call argument. Before the
fix each of these failed a workflow task on Temporal's 2 MB payload limit for ever (TMPRL1103), or
grew the worker by gigabytes (over stdio and over HTTP); now each run completes, or fails with a
typed error naming the limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from runtime.devserver import free_port
from tests.support.histories import assert_no_task_failures, assert_replays, history_payloads
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, workflow_id
from tests.support.tickets_http import http_server_process
from tests.support.worker_process import project_env, worker_process
from workflows.limits import (
    MAX_MODEL_REPLY_BYTES,
    MAX_PLAN_BYTES,
    MAX_TOOL_DESCRIPTION_BYTES,
    MAX_TOOLS_PER_SERVER,
    TEMPORAL_PAYLOAD_BYTES,
)
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 90.0
BIG_SERVER = """
[servers.big]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.big_mcp"]
env = ["BIG_MCP"]
cwd = "{root}"
trust = "trusted"
timeout = "20s"
"""
BIG_AGENT = """
name = "reader"
instructions = "You read."
mcp_servers = ["big"]

[tools]
"*" = "auto"
"""
ECHO_THEN_DONE = {
    "reader": [
        {"tool_call": {"name": "echo", "arguments": {"text": "hello"}}},
        {"message": "Done."},
    ]
}
DUMP_THEN_DONE = {
    "reader": [
        {"tool_call": {"name": "dump", "arguments": {"text": "all"}}},
        {"message": "Done."},
    ]
}
# A worker's resident memory may grow this much while a hostile result streams past it (the
# bounded reader holds at most one 8 MiB message); unbounded, 200 MB took gigabytes.
MAX_RSS_GROWTH_BYTES = 150 * 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, attacks: str, script: dict[str, Any]) -> Any:
    project = make_project(
        tmp_path,
        agents={"reader": BIG_AGENT},
        script=script,
        servers=BIG_SERVER.format(root=REPO_ROOT),
    )
    project.environ["BIG_MCP"] = attacks
    return project


async def _start(client: Client, project: Any, prefix: str) -> WorkflowHandle[Any, AgentResult]:
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="reader", input="Read.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def _recorded(handle: WorkflowHandle[Any, Any]) -> tuple[list[bytes], Any]:
    history = await handle.fetch_history()
    return history_payloads(history.to_json()), history


def _plan_in(payloads: list[bytes]) -> dict[str, Any]:
    plans = [json.loads(p) for p in payloads if p.startswith(b'{"root"')]
    assert len(plans) == 1, "the prepared plan is recorded once"
    return plans[0]


async def test_a_5mb_description_is_cut_and_a_huge_schema_hides_its_tool(client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "description:5000000,schema:40000", ECHO_THEN_DONE)
    async with airlock_worker(client, project):
        handle = await _start(client, project, "big-description")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    payloads, history = await _recorded(handle)
    tools = {tool["name"]: tool for tool in _plan_in(payloads)["agents"]["reader"]["tools"]}
    print(f"5 MB description: largest payload {max(map(len, payloads))} bytes")
    assert result.output == "Done."
    assert "form" not in tools, "a schema too big to record is hidden"
    manual = tools["manual"]["description"].encode()
    assert len(manual) < MAX_TOOL_DESCRIPTION_BYTES + 100
    assert re.search(rb"\[airlock: description cut, \d+ of 5000000 bytes not shown\]", manual)
    assert max(map(len, payloads)) < MAX_PLAN_BYTES
    assert_no_task_failures(history)
    await assert_replays(handle)


async def test_ten_thousand_tools_in_endless_pages_are_bounded(client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "page:500", ECHO_THEN_DONE)
    async with airlock_worker(client, project) as activities:
        handle = await _start(client, project, "big-pages")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        listings = activities.pool.connection("big").listings
    payloads, history = await _recorded(handle)
    tools = _plan_in(payloads)["agents"]["reader"]["tools"]
    assert result.output == "Done."
    assert listings == 1, "a cursor that never ends does not keep the listing going"
    assert len(tools) == MAX_TOOLS_PER_SERVER
    assert_no_task_failures(history)
    await assert_replays(handle)


async def test_ten_thousand_tools_in_one_message_fail_the_run_naming_the_limit(client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "tools:10000", ECHO_THEN_DONE)
    async with airlock_worker(client, project):
        handle = await _start(client, project, "big-tools")
        failure = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert failure.type == "ToolUnavailableError"
    assert "result too large" in failure.message and "50000 parts" in failure.message
    _, history = await _recorded(handle)
    assert_no_task_failures(history)
    await assert_replays(handle)


async def test_a_plan_over_its_budget_fails_the_run_naming_the_limit(client: Client, tmp_path: Path) -> None:
    # 100 tools, each within every per-tool bound (a 7,000-byte description), 700 KB together.
    project = _project(tmp_path, "tools:100,long:7000", ECHO_THEN_DONE)
    async with airlock_worker(client, project):
        handle = await _start(client, project, "big-plan")
        failure = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
        status = await handle.query("status", result_type=dict)
    assert failure.type == "PayloadTooLargeError"
    assert f"{MAX_PLAN_BYTES}-byte plan budget" in failure.message
    assert status["state"] == "failed"
    _, history = await _recorded(handle)
    assert_no_task_failures(history)
    await assert_replays(handle)


async def test_a_10mb_tool_call_argument_is_a_model_error_naming_the_limit(client: Client, tmp_path: Path) -> None:
    script = {"reader": [{"tool_call": {"name": "echo", "arguments": {"text": "x" * 10_000_000}}}]}
    project = _project(tmp_path, "", script)
    async with airlock_worker(client, project):
        handle = await _start(client, project, "big-reply")
        failure = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert failure.type == "ModelError"
    assert f"over the {MAX_MODEL_REPLY_BYTES}-byte limit for one reply" in failure.message
    payloads, history = await _recorded(handle)
    assert max(map(len, payloads)) < 100_000, "the reply was refused before it was recorded"
    assert_no_task_failures(history)
    await assert_replays(handle)


@pytest.mark.parametrize("attack", ["parts:400000", "flood:200000000,id_last"])
async def test_a_huge_result_is_refused_while_read_in_process(client: Client, tmp_path: Path, attack: str) -> None:
    # 16 MB as 400,000 parts, and 200 MB whose request id comes last (the session ends, so the
    # call fails at once): either way the model hears it once, and the read is not retried.
    project = _project(tmp_path, attack, DUMP_THEN_DONE)
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        handle = await _start(client, project, "big-result")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    outputs = model.tool_outputs()
    assert result.output == "Done."
    assert len(outputs) == 1
    limit = "50000 parts" if attack.startswith("parts") else "8388608 bytes"
    assert "result too large" in outputs[0] and limit in outputs[0]
    assert "do not repeat the call" in outputs[0]
    assert activities.pool.connection("big").refused_messages == 1, "refused once: not read again"
    payloads, history = await _recorded(handle)
    assert max(map(len, payloads)) < TEMPORAL_PAYLOAD_BYTES // 20
    assert_no_task_failures(history)
    await assert_replays(handle)


async def test_a_200mb_json_body_over_http_is_refused_while_read(client: Client, tmp_path: Path) -> None:
    port = free_port()
    project = make_project(
        tmp_path,
        agents={"reader": BIG_AGENT},
        script=DUMP_THEN_DONE,
        servers=f'[servers.big]\ntransport = "http"\nurl = "http://127.0.0.1:{port}/mcp"\ntrust = "trusted"\n',
    )
    env = {**os.environ, "BIG_MCP": "flood:200000000", "BIG_PORT": str(port)}
    ready = re.compile(r"big MCP server listening on (http://\S+)")
    async with http_server_process(["-m", "tests.support.big_mcp", "--http"], env, ready):
        async with airlock_worker(client, project) as activities:
            model = record_model(activities)
            handle = await _start(client, project, "big-http")
            result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    outputs = model.tool_outputs()
    assert result.output == "Done."
    assert len(outputs) == 1 and "result too large" in outputs[0] and "8388608 bytes" in outputs[0]
    _, history = await _recorded(handle)
    assert_no_task_failures(history)
    await assert_replays(handle)


def _rss(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1)) * 1024


async def test_a_200mb_result_leaves_the_worker_process_small(client: Client, tmp_path: Path) -> None:
    project = _project(tmp_path, "flood:200000000", DUMP_THEN_DONE)
    address = client.service_client.config.target_host
    async with worker_process(project_env(project, address)) as worker:
        pid = worker.proc.pid
        before = _rss(pid, "VmRSS")
        handle = await _start(client, project, "big-rss")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        peak = _rss(pid, "VmHWM")
    growth = peak - before
    print(
        f"200 MB result: worker RSS {before // 2**20} MiB at start, peak {peak // 2**20} MiB (+{growth // 2**20} MiB)"
    )
    assert result.output == "Done."
    assert growth < MAX_RSS_GROWTH_BYTES
    log = "".join(worker.lines)
    assert "mcp_message_too_large" in log
    assert log.count('"tool_call"') == 1, "a refused result is answered once, not retried"
    payloads, history = await _recorded(handle)
    assert any(b"result too large" in p for p in payloads), "the model heard why"
    assert_no_task_failures(history)
    await assert_replays(handle)
