"""The bundled tickets server over HTTP is guarded: a bearer token, and Host/Origin checks on every bind.

Real server subprocesses on loopback (and, for a 0.0.0.0 bind, in a network namespace that has
only loopback), real HTTP requests, and Airlock's own registry and worker as the client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.airlock_activities import result_text
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, load_servers
from mcp_servers.tickets.guard import GuardError, allowed_hosts, token_from
from mcp_servers.tickets.store import count_writes
from tests.support.airlock_cli import address_of
from tests.support.histories import assert_replays, history_text
from tests.support.project import make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.tickets_http import AUTH_HEADER, REPO_ROOT, TICKETS_TOKEN, HttpServer, tickets_http_server
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentResult

pytestmark = pytest.mark.integration  # starts the tickets server over HTTP

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
EXIT_DEADLINE_S = 30.0
# Distinctive, so finding it anywhere cannot be a coincidence.
LEAK_TOKEN = "tickets-leak-probe-7f3e91c2ab54"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    """A tickets server over HTTP on a free loopback port, requiring the test token."""
    async with tickets_http_server(tmp_path / "tickets.db") as running:
        yield running


def registry_file(root: Path, url: str, *, extra: str = "") -> Path:
    """`servers.toml` with the tickets server at `url`, its token sent from `${TICKETS_TOKEN}`."""
    path = root / "servers.toml"
    path.write_text(
        textwrap.dedent(f"""
    [servers.tickets]
    transport = "http"
    url = "{url}"
    {AUTH_HEADER}
    trust = "trusted"
    timeout = "10s"
    """)
        + extra
    )
    return path


async def post(url: str, headers: dict[str, str]) -> httpx.Response:
    """One raw MCP `tools/list` POST with `headers`."""
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=LIST_TOOLS, headers={**MCP_HEADERS, **headers})


async def test_requests_without_the_right_bearer_token_get_401(server: HttpServer) -> None:
    missing = await post(server.url, {})
    wrong = await post(server.url, {"Authorization": "Bearer " + "x" * len(TICKETS_TOKEN)})
    prefix = await post(server.url, {"Authorization": f"Bearer {TICKETS_TOKEN[:-1]}"})
    basic = await post(server.url, {"Authorization": f"Basic {TICKETS_TOKEN}"})
    async with httpx.AsyncClient(timeout=10) as http:
        # A hostile requester sends two headers, one right: refused rather than guessing which counts.
        doubled = await http.post(
            server.url,
            json=LIST_TOOLS,
            headers=httpx.Headers(
                [
                    *MCP_HEADERS.items(),
                    ("Authorization", "Bearer wrong-one"),
                    ("Authorization", f"Bearer {TICKETS_TOKEN}"),
                ]
            ),
        )
        huge = await http.post(
            server.url, json=LIST_TOOLS, headers={**MCP_HEADERS, "Authorization": "Bearer " + "y" * 8000}
        )
    for response in (missing, wrong, prefix, basic, doubled, huge):
        assert response.status_code == 401, (response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith('Bearer realm="tickets"')
        assert TICKETS_TOKEN not in response.text
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert "error=" not in missing.headers["www-authenticate"]
    assert count_writes(server.db_path) == 0


async def test_with_the_token_the_tools_work_through_airlocks_registry(server: HttpServer, tmp_path: Path) -> None:
    environ = {"TICKETS_TOKEN": TICKETS_TOKEN}
    pool = McpPool(load_servers(registry_file(tmp_path, server.url), environ), environ)
    try:
        tools = {tool.name for tool in await pool.connection("tickets").list_tools()}
        got = await pool.connection("tickets").call_tool("get_ticket", {"ticket_id": "T-1"}, None)
        closed = await pool.connection("tickets").call_tool(
            "close_ticket", {"ticket_id": "T-2", "resolution": "duplicate"}, None
        )
    finally:
        await pool.close()
    assert {"get_ticket", "close_ticket", "search_tickets"} <= tools
    assert not got.is_error, result_text(got)
    assert got.structured_content is not None
    assert got.structured_content["title"] == "Login page returns 500 after password reset"
    assert not closed.is_error, result_text(closed)
    assert count_writes(server.db_path, "close_ticket") == 1


async def test_a_worker_with_the_wrong_token_is_told_401_naming_the_server(server: HttpServer, tmp_path: Path) -> None:
    environ = {"TICKETS_TOKEN": "not-the-token-but-long-enough"}
    pool = McpPool(load_servers(registry_file(tmp_path, server.url), environ), environ)
    try:
        with pytest.raises(ServerFailedError) as refused:
            await pool.connection("tickets").list_tools()
    finally:
        await pool.close()
    message = str(refused.value)
    assert "401" in message and "'tickets'" in message, message
    assert "not-the-token-but-long-enough" not in message


async def test_a_wrong_host_or_a_cross_origin_request_is_refused_even_with_the_token(
    server: HttpServer,
    tmp_path: Path,
) -> None:
    port = server.url.split(":")[2].split("/")[0]
    auth = {"Authorization": f"Bearer {TICKETS_TOKEN}"}
    rebound = await post(server.url, {**auth, "Host": f"attacker.example:{port}"})
    cross = await post(server.url, {**auth, "Origin": "http://attacker.example"})
    lookalike = await post(server.url, {**auth, "Origin": "http://127.0.0.1.attacker.example"})
    assert (rebound.status_code, rebound.text) == (421, "Invalid Host header")
    assert (cross.status_code, cross.text) == (403, "Invalid Origin header")
    assert (lookalike.status_code, lookalike.text) == (403, "Invalid Origin header")
    # A same-origin Origin is fine: a client that sends one still gets its tools.
    environ = {"TICKETS_TOKEN": TICKETS_TOKEN}
    path = registry_file(tmp_path, server.url)
    path.write_text(path.read_text().replace("Authorization =", f'Origin = "http://127.0.0.1:{port}", Authorization ='))
    pool = McpPool(load_servers(path, environ), environ)
    try:
        got = await pool.connection("tickets").call_tool("get_ticket", {"ticket_id": "T-1"}, None)
    finally:
        await pool.close()
    assert not got.is_error, result_text(got)


async def test_bound_to_every_interface_the_host_check_still_applies(tmp_path: Path) -> None:
    # Only inside a network namespace that has nothing but loopback does a 0.0.0.0 bind expose nothing.
    script = f"ip link set lo up && exec {sys.executable} -m tests.support.netns_probe {tmp_path / 'tickets.db'}"
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-rn",
        "sh",
        "-c",
        script,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]
    report: dict[str, Any] = json.loads(out)
    assert report["bound"].startswith("http://0.0.0.0:")
    assert report["rebound_name"] == [421, "Invalid Host header"]
    assert report["other_address"] == [421, "Invalid Host header"]
    assert report["cross_origin"] == [403, "Invalid Origin header"]
    assert report["no_token"][0] == 401
    # Names it does answer to: loopback, and the one listed with --allowed-host. The MCP transport
    # itself answers these (a bare tools/list without a session), past the Host and token checks.
    for allowed in ("loopback_host", "listed_host"):
        assert report[allowed][0] == 400 and "jsonrpc" in report[allowed][1], report[allowed]
    assert report["registry"] == [False, "Login page returns 500 after password reset"]


# --- start-up refusals ---------------------------------------------------------------------------


async def run_server(tmp_path: Path, *args: str, token: str | None) -> tuple[int, str]:
    """`python -m mcp_servers.tickets --http ARGS` expected to exit by itself; its status and stderr."""
    env = {"PATH": "/usr/bin:/bin", "TICKETS_DB": str(tmp_path / "tickets.db"), "PYTHONPATH": str(REPO_ROOT)}
    if token is not None:
        env["TICKETS_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcp_servers.tickets",
        "--http",
        "--port",
        "0",
        "--log-format",
        "json",
        *args,
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
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_http_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    code, err = await run_server(tmp_path, token=None)
    assert code == 2, err
    assert "TICKETS_TOKEN is not set: serving over HTTP requires a bearer token" in err
    assert "listening on" not in err


async def test_a_short_or_unsendable_token_or_a_bad_allowed_host_refuses_to_start(tmp_path: Path) -> None:
    short, spaced, host = await asyncio.gather(
        run_server(tmp_path, token="short"),
        run_server(tmp_path, token="has spaces in it, sixteen+"),
        run_server(tmp_path, "--allowed-host", "https://tickets.internal/mcp", token=TICKETS_TOKEN),
    )
    assert short[0] == 2 and "TICKETS_TOKEN has 5 characters: use at least 16" in short[1]
    assert spaced[0] == 2 and "may hold only letters, digits" in spaced[1]
    assert host[0] == 2 and "allowed host 'https://tickets.internal/mcp' is not a host name" in host[1]
    assert "has spaces in it" not in spaced[1], "the refused token is not logged"


def test_token_and_insecure_flag_together_are_refused() -> None:
    with pytest.raises(GuardError, match="TICKETS_TOKEN is set and --insecure-no-auth is given"):
        token_from({"TICKETS_TOKEN": TICKETS_TOKEN}, insecure_no_auth=True)
    assert token_from({}, insecure_no_auth=True) is None
    assert token_from({"TICKETS_TOKEN": TICKETS_TOKEN}, insecure_no_auth=False) == TICKETS_TOKEN.encode()


def test_allowed_hosts_follow_the_bind_address_and_the_configured_names() -> None:
    loopback = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"]
    assert allowed_hosts("0.0.0.0", []) == loopback
    assert allowed_hosts("::", []) == loopback
    assert allowed_hosts("127.0.0.1", ["tickets.internal:8443"]) == [*loopback, "tickets.internal:8443"]
    assert allowed_hosts("10.0.0.7", []) == ["10.0.0.7", "10.0.0.7:*"]
    assert allowed_hosts("fd00::7", []) == ["[fd00::7]", "[fd00::7]:*"]
    for hostile in ("*", "evil.example/path", "user@evil.example", "", "a b"):
        with pytest.raises(GuardError, match="is not a host name"):
            allowed_hosts("127.0.0.1", [hostile])


async def test_insecure_no_auth_serves_without_a_token_but_keeps_the_host_check(tmp_path: Path) -> None:
    async with tickets_http_server(tmp_path / "tickets.db", token=None, extra=("--insecure-no-auth",)) as server:
        port = server.url.split(":")[2].split("/")[0]
        plain = await post(server.url, {})
        rebound = await post(server.url, {"Host": f"attacker.example:{port}"})
    assert plain.status_code == 400 and "jsonrpc" in plain.text, "past the (absent) token check"
    assert (rebound.status_code, rebound.text) == (421, "Invalid Host header")
    assert any("no authentication (--insecure-no-auth)" in line for line in server.stderr_lines)


# --- the token stays on the worker ---------------------------------------------------------------


async def test_the_token_appears_in_no_worker_log_history_or_server_log(
    temporal_env: WorkflowEnvironment,
    client: Client,
    tmp_path: Path,
) -> None:
    script = {
        "support": [
            {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
            {"message": "Closed T-1."},
        ]
    }
    async with tickets_http_server(tmp_path / "http.db", token=LEAK_TOKEN) as server:
        servers = registry_file(tmp_path, server.url).read_text()
        project = make_project(tmp_path, script=script, servers=servers)
        project.environ["TICKETS_TOKEN"] = LEAK_TOKEN
        env = project_env(project, address_of(temporal_env), AIRLOCK_LOG_LEVEL="DEBUG")
        async with worker_process(env) as worker:
            handle = await client.start_workflow(
                "AgentWorkflow",
                {"agent": "support", "input": "Close T-1.", "requester": "carol"},
                id=workflow_id("token-leak"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            [pending] = await wait_pending(handle)
            await handle.signal("approve", decision(pending, "alice"))
            result = await handle.result()
            history = await history_text(handle)
        server_log = "".join(server.stderr_lines)
    assert result.output == "Closed T-1."
    assert count_writes(server.db_path, "close_ticket") == 1, "the write went through the guarded server"
    worker_log = "".join(worker.lines)
    assert "tickets" in worker_log and len(worker.lines) > 10, "the capture saw the worker's own lines"
    assert LEAK_TOKEN not in worker_log
    assert LEAK_TOKEN not in history
    assert LEAK_TOKEN not in server_log
    await assert_replays(handle)
