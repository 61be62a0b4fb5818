"""One log stream: JSON lines on stderr from the worker, Temporal core and the bundled servers;
the demo's stdout only its walkthrough; the demo's hints work; the scripted agent hears a "no".
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

from runtime.devserver import free_port
from runtime.settings import PROJECT_ROOT
from tests.support.airlock_cli import airlock
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from tests.support.tickets_http import tickets_http_server
from tests.support.worker_process import REPO_ROOT, worker_process
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # runs worker and MCP server processes

DEMO_DEADLINE_S = 120.0


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Airlock or OpenAI setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_"))}
    return {**env, **extra}


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of `text` parsed as JSON; the test fails on the first line that is not."""
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return parsed


async def test_demo_prints_only_its_walkthrough_logs_one_json_stream_and_its_hint_works(tmp_path: Path) -> None:
    env = clean_env(
        AIRLOCK_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        AIRLOCK_DEV_UI_PORT=str(free_port()),
        AIRLOCK_DATA_DIR=str(tmp_path / "data"),
        TICKETS_DB=str(tmp_path / "tickets.db"),
        AIRLOCK_TEMPORAL_CORE_LOG_LEVEL="INFO",
        HOME=str(tmp_path),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        "--demo",
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), DEMO_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "model: scripted (agents/scripted.json), offline"
    assert any(line.startswith("■ completed: Closed T-1") for line in lines), out
    assert "Temporal Server:" not in out and "Temporal CLI" not in out, "the dev server's banner stays off stdout"
    assert not any(line.startswith("{") for line in lines), "no log line on stdout"
    assert "\x1b[" not in out + err, "no ANSI colour codes"
    records = json_lines(err)
    loggers = {str(record.get("logger")) for record in records}
    assert any(name.startswith("temporalio.core") for name in loggers), loggers
    assert "mcp_servers.tickets.store" in loggers, "the stdio tickets server logs in the same format"
    assert any(record.get("event") == "worker ready" for record in records)

    # The hint the demo ends with: a dev worker on the same database, and the audit of the run.
    [hint] = [line for line in lines if "look again later" in line]
    dev, audit = hint.split(": ", 1)[1].split("; then, in another terminal: ")
    words = shlex.split(dev)
    settings = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
    assert [word for word in words if "=" not in word] == ["python", "worker.py", "--dev"]
    async with worker_process({**env, **settings}, "--dev"):
        ran = await airlock(*shlex.split(audit)[1:], home=tmp_path, env={"AIRLOCK_LOG_FORMAT": "json"})
    assert ran.code == 0, ran.describe()
    assert "approved" in ran.out and "alice" in ran.out, ran.out


async def test_tickets_server_over_http_logs_json_lines(tmp_path: Path) -> None:
    async with tickets_http_server(tmp_path / "tickets.db") as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/mcp")
    records = json_lines("".join(server.stderr_lines))
    assert any(str(record["event"]).startswith("tickets MCP server listening on") for record in records)


async def test_scripted_support_agent_does_not_claim_a_rejected_close(client: Client, tmp_path: Path) -> None:
    script = json.loads((PROJECT_ROOT / "agents" / "scripted.json").read_text())
    project = make_project(
        tmp_path,
        agents={"support": (PROJECT_ROOT / "agents" / "support.toml").read_text()},
        script={"support": script["support"]},
    )
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="carol"),
            id=workflow_id("reject-demo"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        await handle.signal(
            "reject",
            {
                "call_id": pending["call_id"],
                "arguments_sha256": pending["arguments_sha256"],
                "approver": "alice",
                "reason": "T-1 is not fixed yet",
            },
        )
        result = await handle.result()
    assert result.output.startswith("T-1 stays open."), result.output
    assert "T-1 is not fixed yet" in result.output
    assert "Closed" not in result.output
