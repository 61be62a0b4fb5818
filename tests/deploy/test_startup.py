"""Start-up that tells the truth, on a dev server started as an operator starts one (no Airlock flags).

The worker creates its search attributes (or stops with the command that does), names the
dependencies that do not answer, and `airlock run --follow` takes a newcomer's run to its gate and
prints a command that, pasted, decides it.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from mcp_servers.tomlfiles import ConfigError
from runtime.devserver import free_port
from tests.support.airlock_cli import AIRLOCK, address_of, airlock
from tests.support.plain_devserver import plain_dev_server
from tests.support.project import make_project
from tests.support.worker_process import project_env, worker_process
from worker import build_activities, preflight

pytestmark = pytest.mark.integration  # runs worker processes

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
        {"message": "Closed T-1."},
    ]
}


async def test_worker_creates_missing_search_attributes_and_a_followed_run_is_decided_by_its_printed_command(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with plain_dev_server() as server:
        before = await server.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert "AirlockState" not in before.custom_attributes
        async with worker_process(project_env(project, server.address)) as worker:
            created = next(i for i, line in enumerate(worker.lines) if '"search attributes created"' in line)
            ready = next(i for i, line in enumerate(worker.lines) if '"worker ready"' in line)
            assert created < ready
            after = await server.client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace="default")
            )
            assert {"AirlockState", "AirlockAgent"} <= set(after.custom_attributes)

            env = {**project_env(project, server.address), "HOME": str(tmp_path)}
            follower = await asyncio.create_subprocess_exec(
                str(AIRLOCK),
                "run",
                "support",
                "Close T-1, it is fixed.",
                "--follow",
                "--requester",
                "carol",
                "--id",
                "newcomer-1",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert follower.stdout is not None
            lines: list[str] = []
            try:

                async def approve_line() -> str:
                    assert follower.stdout is not None
                    while line := (await follower.stdout.readline()).decode():
                        lines.append(line)
                        if line.strip().startswith("approve: "):
                            return line.strip().removeprefix("approve: ")
                    raise AssertionError("airlock run ended before the gate:\n" + "".join(lines))

                command = await asyncio.wait_for(approve_line(), 30)
                waiting = [w.id async for w in server.client.list_workflows('AirlockState="awaiting_approval"')]
                assert waiting == ["newcomer-1"]
                assert count_writes(project.tickets_db) == 0
                parts = [("alice" if part == "<you>" else part) for part in shlex.split(command)]
                assert parts[:2] == ["airlock", "approve"]
                approved = await airlock("--address", server.address, *parts[1:], home=tmp_path, env=env)
                assert approved.code == 0, approved.describe()
                rest, err = await asyncio.wait_for(follower.communicate(), 30)
            finally:
                if follower.returncode is None:
                    follower.kill()
                    await follower.wait()
    out = "".join(lines) + rest.decode()
    assert follower.returncode == 0, out + err.decode()
    assert "▶ started newcomer-1" in out
    assert "awaiting_approval" in out
    assert "■ completed: Closed T-1." in out
    assert count_writes(project.tickets_db, "close_ticket") == 1


async def test_worker_that_may_not_create_its_search_attributes_stops_with_the_command(tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    activities = build_activities(project.settings, environ=project.environ)
    async with plain_dev_server() as server:
        # SQL visibility holds 10 Keyword attributes: with them taken, the server refuses Airlock's.
        await server.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes={f"Other{i}": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for i in range(10)},
            )
        )
        with pytest.raises(ConfigError) as refused:
            await preflight(server.client, project.settings, activities)
    message = str(refused.value)
    assert (
        "temporal operator search-attribute create --namespace default --name AirlockState --type Keyword "
        "--name AirlockAgent --type Keyword"
    ) in message
    assert "cannot have more than 10" in message


async def test_worker_names_every_dependency_that_does_not_answer(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    closed = free_port()
    servers = f"""
[servers.tickets]
transport = "stdio"
command = "python"
args = ["-m", "mcp_servers.tickets"]
env = ["TICKETS_DB"]
trust = "trusted"

[servers.crm]
transport = "http"
url = "http://127.0.0.1:{closed}/mcp"
trust = "untrusted"
timeout = "3s"
"""
    project = make_project(
        tmp_path,
        script=SCRIPT,
        servers=servers,
        model_provider="openai",
        openai_api_key="sk-test-unreachable-5e1f",
        openai_base_url=f"http://127.0.0.1:{closed}/v1",
    )
    activities = build_activities(project.settings, environ=project.environ)
    try:
        # Named, not a refusal to start: a dependency that is down degrades the worker (test_degraded_start.py).
        health = await preflight(temporal_env.client, project.settings, activities)
    finally:
        await activities.pool.close()
    endpoint = f"http://127.0.0.1:{closed}/v1/"
    down = {d.name: d.why for d in health.down}
    assert set(down) == {endpoint, "crm"}, "the reachable server is not named"
    assert f"model provider at {endpoint} is unreachable" in str(down[endpoint])
    assert "MCP server 'crm'" in str(down["crm"])


async def test_run_with_no_worker_on_its_queue_says_so(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    workflow = f"orphan-{free_port()}"
    env = {"AIRLOCK_TASK_QUEUE": "nobody-polls-this-queue", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    follower = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        "--address",
        address_of(temporal_env),
        "run",
        "support",
        "hello",
        "--follow",
        "--id",
        workflow,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert follower.stdout is not None
    lines: list[str] = []

    async def warning() -> str:
        assert follower.stdout is not None
        while line := (await follower.stdout.readline()).decode():
            lines.append(line)
            if "no worker polls" in line:
                return line
        raise AssertionError("airlock run ended without the warning:\n" + "".join(lines))

    try:
        line = await asyncio.wait_for(warning(), 20)
    finally:
        follower.kill()
        await follower.wait()
        await temporal_env.client.get_workflow_handle(workflow).terminate("test over")
    assert "no worker polls task queue 'nobody-polls-this-queue'" in line
    assert lines[0].startswith(f"▶ started {workflow}")
