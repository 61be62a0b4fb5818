"""Start-up that matches durable execution: configuration problems stop the worker, all named at once;
a dependency that is down does not, it is reported (log, metrics, `/healthz`) while other agents run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from runtime.devserver import free_port
from tests.support.airlock_cli import address_of
from tests.support.conditions import condition, wait_for
from tests.support.project import SUPPORT_AGENT, TICKETS_STDIO, make_project
from tests.support.runs import workflow_id
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server
from tests.support.worker_process import REPO_ROOT, project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # runs worker processes

EXIT_DEADLINE_S = 60.0

CRM_DESK = """
name = "crm_desk"
instructions = "You look customers up."
mcp_servers = ["crm"]

[tools]
"get_*" = "auto"
"""

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "T-1 is open."},
    ],
    "crm_desk": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"message": "T-2 looked up."},
    ],
}


def crm_server(port: int) -> str:
    """The tickets server (stdio) plus `crm`: an HTTP server expected on `port`, which nothing serves yet."""
    return (
        TICKETS_STDIO
        + f"""
[servers.crm]
transport = "http"
url = "http://127.0.0.1:{port}/mcp"
{AUTH_HEADER}
trust = "trusted"
timeout = "3s"
"""
    )


async def dependency_up(http: httpx.AsyncClient, url: str, kind: str, name: str) -> float:
    """`airlock_dependency_up{kind, name}` as the worker's Prometheus endpoint serves it now."""
    text = (await http.get(url)).text
    [found] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "airlock_dependency_up"
        and sample.labels.get("kind") == kind
        and sample.labels.get("name") == name
    ]
    return found


def records(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON log records among a worker's stderr lines."""
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_worker_with_neither_model_nor_temporal_names_every_problem_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_"))}
    env.update(
        {
            # Nothing listens here, no model is configured, and one setting is malformed.
            "AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "AIRLOCK_METRICS_BIND": "not-an-address",
            "AIRLOCK_LOG_FORMAT": "json",
            "AIRLOCK_DATA_DIR": str(tmp_path / "data"),
            "HOME": str(tmp_path),
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), EXIT_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    logged = records(err.decode().splitlines())
    assert proc.returncode == 2, err.decode()
    [stopped] = [r for r in logged if r["event"] == "configuration error"]
    message = str(stopped["error"])
    assert message.startswith("3 problems:"), message
    assert "AIRLOCK_METRICS_BIND='not-an-address' is not host:port" in message
    assert "no model configured: set OPENAI_API_KEY" in message
    assert f"cannot reach Temporal at {env['AIRLOCK_TEMPORAL_ADDRESS']}" in message
    assert [p.split(":")[0] for p in stopped["problems"]] == ["settings", "model", "temporal"]
    assert not any(r["event"] == "worker ready" for r in logged)


async def test_worker_whose_one_http_server_is_down_starts_runs_the_other_agents_and_reports_it(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    crm_port = free_port()
    project = make_project(
        tmp_path, agents={"support": SUPPORT_AGENT, "crm_desk": CRM_DESK}, script=SCRIPT, servers=crm_server(crm_port)
    )
    project.environ["TICKETS_TOKEN"] = TICKETS_TOKEN
    metrics_bind, health_bind = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = project_env(
        project,
        address_of(temporal_env),
        AIRLOCK_METRICS_BIND=metrics_bind,
        AIRLOCK_HEALTH_BIND=health_bind,
        AIRLOCK_DEPENDENCY_CHECK_INTERVAL="0.5s",
    )
    client = temporal_env.client
    async with worker_process(env) as worker, httpx.AsyncClient(timeout=5) as http:
        # Started: the one line that says which dependency is down, and why.
        [down] = [r for r in records(worker.lines) if r["event"] == "dependency_down"]
        assert (down["kind"], down["dependency"]) == ("mcp_server", "crm")
        assert f"127.0.0.1:{crm_port}" in down["why"] or "unreachable" in down["why"], down

        # An agent that does not use it runs to completion.
        result = await client.execute_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Is T-1 open?", requester="carol"),
            id=workflow_id("degraded-support"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        assert result.status == "completed" and result.output == "T-1 is open."

        # The one that does use it fails through the normal retry path into a typed failure.
        try:
            await client.execute_workflow(
                "AgentWorkflow",
                AgentRequest(agent="crm_desk", input="Look up T-2.", requester="carol"),
                id=workflow_id("degraded-crm"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            raise AssertionError("a run that needs the down server completed")
        except WorkflowFailureError as failed:
            cause = failed.cause
            assert isinstance(cause, ApplicationError) and cause.type == "ToolUnavailableError", cause
            assert "MCP server 'crm' is unreachable" in cause.message

        health = (await http.get(f"http://{health_bind}/healthz")).json()
        assert health["status"] == "degraded"
        by_name = {(d["kind"], d["name"]): d for d in health["dependencies"]}
        assert by_name[("mcp_server", "crm")]["up"] is False and by_name[("mcp_server", "crm")]["why"]
        assert by_name[("mcp_server", "tickets")]["up"] is True
        assert by_name[("model", "scripted")]["up"] is True

        metrics = f"http://{metrics_bind}/metrics"
        assert await dependency_up(http, metrics, "mcp_server", "crm") == 0
        assert await dependency_up(http, metrics, "mcp_server", "tickets") == 1

        # The server comes up: the background probe sees it, logs it, and the gauge follows.
        async with tickets_http_server(tmp_path / "crm.db", crm_port):

            async def back() -> bool:
                report = (await http.get(f"http://{health_bind}/healthz")).json()
                return bool(report["status"] == "ok")

            await wait_for(back, timeout=30, what="crm to be reported up")
            assert await dependency_up(http, metrics, "mcp_server", "crm") == 1
            await wait_for(
                condition(lambda: any(r["event"] == "dependency_up" for r in records(worker.lines))),
                what="the dependency_up line",
            )
            result = await client.execute_workflow(
                "AgentWorkflow",
                AgentRequest(agent="crm_desk", input="Look up T-2.", requester="carol"),
                id=workflow_id("recovered-crm"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            assert result.output == "T-2 looked up."
