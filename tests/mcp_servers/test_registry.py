"""The MCP server registry against real servers: pooling, reconnects, child env, headers, close."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from mcp_servers.registry import McpPool, ServerConfig, ServerUnavailable, expand, load_servers
from tests.conftest import TICKETS_STDIO, wait_for
from tests.support.tickets_http import tickets_http_server
from workflows.activities import result_text
from workflows.devserver import free_port

EXIT_DEADLINE_S = 10.0

# A server nobody configured for us: it reports what its own process sees.
PROBE_SERVER = '''
import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("probe")


@server.tool()
def env() -> str:
    """Names of this process's environment variables, sorted, as JSON."""
    return json.dumps(sorted(os.environ))


@server.tool()
def pid() -> int:
    """This process's id."""
    return os.getpid()


if __name__ == "__main__":
    server.run("stdio")
'''


def registry(root: Path, text: str, environ: Mapping[str, str]) -> dict[str, ServerConfig]:
    """Write `servers.toml` under `root` and load it as the worker does."""
    path = root / "servers.toml"
    path.write_text(textwrap.dedent(text))
    return load_servers(path, environ)


def probe_registry(root: Path, environ: Mapping[str, str]) -> dict[str, ServerConfig]:
    """A registry with the probe server over stdio, passing only `LISTED_VAR` to it."""
    script = root / "probe_server.py"
    script.write_text(PROBE_SERVER)
    return registry(root, f"""
    [servers.probe]
    transport = "stdio"
    command = "python"
    args = [{json.dumps(str(script))}]
    env = ["LISTED_VAR"]
    trust = "trusted"
    timeout = "10s"
    """, environ)


async def get_title(pool: McpPool, ticket_id: str = "T-1") -> str:
    """Call `get_ticket` through the pool and return the ticket's title."""
    result = await pool.connection("tickets").call_tool("get_ticket", {"ticket_id": ticket_id}, None)
    assert not result.is_error, result_text(result)
    assert result.structured_content is not None
    return str(result.structured_content["title"])


async def test_pool_reuses_one_session_for_many_calls(tmp_path: Path) -> None:
    environ = {"TICKETS_DB": str(tmp_path / "tickets.db")}
    pool = McpPool(registry(tmp_path, TICKETS_STDIO, environ), environ)
    try:
        titles = [await get_title(pool) for _ in range(10)]
        titles += await asyncio.gather(*(get_title(pool) for _ in range(10)))
        assert len(titles) == 20
        assert set(titles) == {"Login page returns 500 after password reset"}
        assert pool.connection("tickets").connects == 1
    finally:
        await pool.close()


async def test_reconnects_after_http_server_restart(tmp_path: Path) -> None:
    db = tmp_path / "tickets.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    text = f'[servers.tickets]\ntransport = "http"\nurl = "{url}"\ntrust = "trusted"\ntimeout = "5s"\n'
    pool = McpPool(registry(tmp_path, text, {}), {})
    connection = pool.connection("tickets")
    try:
        async with tickets_http_server(db, port=port) as first:
            assert first.url == url
            await get_title(pool)
        assert connection.connects == 1
        async with tickets_http_server(db, port=port):
            async def call_succeeds() -> str | None:
                # The first call may still ride the dead session; it must fail cleanly, not hang.
                try:
                    return await get_title(pool)
                except ServerUnavailable:
                    return None
            await wait_for(call_succeeds, timeout=30, what="a call after the restart")
            assert connection.connects == 2
    finally:
        await pool.close()


async def test_stdio_child_gets_only_listed_env_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set on the worker process too: the child must not inherit the worker's environment.
    monkeypatch.setenv("SECRET_NOT_LISTED", "worker-secret")
    environ = {**os.environ, "LISTED_VAR": "visible", "SECRET_NOT_LISTED": "pool-secret"}
    pool = McpPool(probe_registry(tmp_path, environ), environ)
    try:
        result = await pool.connection("probe").call_tool("env", {}, None)
        assert not result.is_error, result_text(result)
        names = json.loads(result_text(result))
    finally:
        await pool.close()
    assert "LISTED_VAR" in names
    assert "SECRET_NOT_LISTED" not in names


async def test_header_variables_are_expanded_on_the_worker(tmp_path: Path) -> None:
    environ = {"TOKEN": "tok-8d1e"}
    async with tickets_http_server(tmp_path / "tickets.db") as server:
        servers = registry(tmp_path, f"""
        [servers.tickets]
        transport = "http"
        url = "{server.url}"
        headers = {{ X-Token = "Bearer ${{TOKEN}}" }}
        trust = "trusted"
        timeout = "10s"
        """, environ)
        # The loaded config keeps the template; the value exists only when a connection opens.
        assert servers["tickets"].headers == {"X-Token": "Bearer ${TOKEN}"}
        assert expand(servers["tickets"].headers["X-Token"], environ) == "Bearer tok-8d1e"
        pool = McpPool(servers, environ)
        try:
            assert await get_title(pool) == "Login page returns 500 after password reset"
            assert await get_title(pool, "T-2") == "CSV export drops rows with non-ASCII customer names"
        finally:
            await pool.close()


async def test_close_stops_stdio_children(tmp_path: Path) -> None:
    environ = {"LISTED_VAR": "visible"}
    pool = McpPool(probe_registry(tmp_path, environ), environ)
    try:
        result = await pool.connection("probe").call_tool("pid", {}, None)
        assert not result.is_error, result_text(result)
        pid = int(result_text(result))
        assert pid != os.getpid()
        os.kill(pid, 0)  # alive while the session is open
    finally:
        await pool.close()

    async def exited() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        await wait_for(exited, timeout=EXIT_DEADLINE_S, what=f"stdio child {pid} to exit after close()")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)  # the test has failed; still leave no process behind
        raise
