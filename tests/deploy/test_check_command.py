"""`airlock check` and `python worker.py --check`: every start-up check, one line each, for deploy
pipelines and people; exit 0 only when all pass; nothing created or started.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from tests.support.airlock_cli import address_of, airlock
from tests.support.plain_devserver import plain_dev_server
from tests.support.project import TICKETS_STDIO, make_project
from tests.support.tickets_http import AUTH_HEADER, tickets_http_server
from tests.support.worker_process import REPO_ROOT, project_env

pytestmark = pytest.mark.integration  # runs worker processes

EXIT_DEADLINE_S = 90.0


async def worker_check(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`python worker.py --check ARGS` as a subprocess: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        "--check",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EXIT_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def statuses(report: dict[str, Any]) -> dict[str, str]:
    """check name → status, from `-o json`."""
    return {check["name"]: check["status"] for check in report["checks"]}


async def test_check_passes_on_a_ready_deployment(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    env = project_env(project, address_of(temporal_env))
    code, out, err = await worker_check(env)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "all checks passed"
    assert all(line.startswith("ok ") for line in lines[:-1]), out
    names = [line.split()[1].rstrip(":") for line in lines[:-1]]
    assert names[:2] == ["settings", "servers"] and "temporal" in names and "search" in names
    assert any(line.startswith("ok       mcp server tickets") for line in lines), out

    cli_env = {k: v for k, v in env.items() if k.startswith("AIRLOCK_") or k == "TICKETS_DB"}
    ran = await airlock("-o", "json", "check", home=tmp_path, env=cli_env)
    assert ran.code == 0, ran.describe()
    report = ran.json()
    assert report["ok"] is True
    assert set(statuses(report).values()) == {"ok"}
    assert statuses(report)["mcp server tickets"] == "ok"


async def test_check_names_every_problem_with_its_fix_and_creates_nothing(tmp_path: Path) -> None:
    async with tickets_http_server(tmp_path / "crm.db") as crm:
        servers = (
            TICKETS_STDIO
            + f"""
[servers.crm]
transport = "http"
url = "{crm.url}"
{AUTH_HEADER}
trust = "untrusted"
timeout = "3s"
"""
        )
        project = make_project(tmp_path, servers=servers)
        # The worker sends a token the server does not take: it answers 401.
        project.environ["TICKETS_TOKEN"] = "not-the-token"
        async with plain_dev_server() as server:
            env = project_env(project, server.address)
            code, out, err = await worker_check(env)
            assert code == 1, out + err
            lines = {line.split(":")[0].split(None, 1)[1]: line for line in out.splitlines()[:-1]}
            assert lines["search attributes"].startswith("problem")
            assert (
                "temporal operator search-attribute create --namespace default --name AirlockState --type Keyword "
                "--name AirlockAgent --type Keyword"
            ) in lines["search attributes"]
            assert lines["mcp server crm"].startswith("problem") and "401" in lines["mcp server crm"], out
            assert lines["mcp server tickets"].startswith("ok")
            assert lines["temporal"].startswith("ok")
            assert out.splitlines()[-1] == "2 problem(s)"

            # The same from the operator CLI, as JSON, against the same server given by --address.
            cli_env = {k: v for k, v in env.items() if k.startswith("AIRLOCK_") and k != "AIRLOCK_TEMPORAL_ADDRESS"}
            cli_env.update(project.environ)
            ran = await airlock("--address", server.address, "check", "-o", "json", home=tmp_path, env=cli_env)
            assert ran.code == 1, ran.describe()
            report = json.loads(ran.out)
            assert report["ok"] is False
            found = statuses(report)
            assert found["search attributes"] == found["mcp server crm"] == "problem"
            assert found["temporal"] == found["mcp server tickets"] == found["model"] == "ok"
            crm_check = next(c for c in report["checks"] if c["name"] == "mcp server crm")
            assert crm_check["dependency"] is True and "401" in crm_check["detail"]

            # Checking is not fixing: the attributes are still missing.
            listed = await server.client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace="default")
            )
            assert "AirlockState" not in listed.custom_attributes
