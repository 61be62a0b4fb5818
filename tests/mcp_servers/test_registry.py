"""The MCP server registry against real servers: pooling, reconnects, child env, headers, close."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from activities.airlock_activities import result_text
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, ServerConfig, expand, load_servers
from mcp_servers.tomlfiles import ConfigError
from runtime.devserver import free_port
from tests.support.conditions import wait_for
from tests.support.project import TICKETS_STDIO
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server

pytestmark = pytest.mark.integration  # starts MCP servers

EXIT_DEADLINE_S = 10.0

T = TypeVar("T")

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


# A session-based (handshake-era) server over streamable HTTP, as every mcp 1.x server is. The
# bundled SDK also speaks the sessionless 2026 protocol; this gate turns that off the way an older
# server would, so the client falls back to `initialize` and a server-side session.
SESSION_SERVER = '''
import json
import os
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

server = MCPServer("legacy")


@server.tool()
def pid() -> int:
    """This process's id."""
    return os.getpid()


app = server.streamable_http_app(host="127.0.0.1")
MISSING_SESSION = json.dumps({
    "jsonrpc": "2.0", "id": "server-error",
    "error": {"code": -32600, "message": "Bad Request: Missing session ID"},
}).encode()


async def handshake_era_only(scope, receive, send):
    if scope["type"] == "http":
        version = dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode()
        if version and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            # What an mcp 1.x server answers to `server/discover`: it knows no such era.
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": MISSING_SESSION})
            return
    await app(scope, receive, send)


if __name__ == "__main__":
    uvicorn.run(handshake_era_only, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
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
    return registry(
        root,
        f"""
    [servers.probe]
    transport = "stdio"
    command = "python"
    args = [{json.dumps(str(script))}]
    env = ["LISTED_VAR"]
    trust = "trusted"
    timeout = "10s"
    """,
        environ,
    )


@contextlib.asynccontextmanager
async def python_server(script: Path, port: int, log: Path) -> AsyncIterator[int]:
    """Run `python script port` until the block ends; yield its pid once the port accepts."""
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:

        async def accepts() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"{script.name} exited early (code {proc.returncode}); see {log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_for(accepts, timeout=15, what=f"{script.name} to listen on {port}")
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), EXIT_DEADLINE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


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


# What a worker needs to reach the bundled tickets server over HTTP: its bearer token.
TOKEN_ENV = {"TICKETS_TOKEN": TICKETS_TOKEN}


def http_registry(root: Path, port: int, name: str = "tickets") -> dict[str, ServerConfig]:
    """A registry with one trusted server `name` over HTTP on 127.0.0.1:`port`, sending the test token."""
    return registry(
        root,
        f"""
    [servers.{name}]
    transport = "http"
    url = "http://127.0.0.1:{port}/mcp"
    {AUTH_HEADER}
    trust = "trusted"
    timeout = "5s"
    """,
        TOKEN_ENV,
    )


async def call_after_restart(pool: McpPool, call: Callable[[McpPool], Awaitable[T]]) -> T:
    """`call` until it succeeds; the first call after a restart may fail cleanly, never hang."""

    async def attempt() -> T | None:
        try:
            return await call(pool)
        except ServerFailedError:
            return None

    return await wait_for(attempt, timeout=30, what="a successful call after the restart")


async def test_survives_http_server_restart(tmp_path: Path) -> None:
    db, port = tmp_path / "tickets.db", free_port()
    pool = McpPool(http_registry(tmp_path, port), TOKEN_ENV)
    connection = pool.connection("tickets")
    try:
        async with tickets_http_server(db, port=port) as server:
            assert server.url == f"http://127.0.0.1:{port}/mcp"
            await get_title(pool)
        assert connection.connects == 1
        async with tickets_http_server(db, port=port):
            title = await call_after_restart(pool, get_title)
        assert title == "Login page returns 500 after password reset"
        # MCP 2026-07-28 over HTTP has no server-side session: the restarted server serves the
        # existing client as it is, so nothing had to be reopened.
        assert connection.connects == 1
    finally:
        await pool.close()


async def test_reconnects_after_http_server_outage(tmp_path: Path) -> None:
    db, port = tmp_path / "tickets.db", free_port()
    pool = McpPool(http_registry(tmp_path, port), TOKEN_ENV)
    connection = pool.connection("tickets")
    try:
        async with tickets_http_server(db, port=port):
            await get_title(pool)
        # A call while the server is down fails at once with the registry's own error ...
        with pytest.raises(ServerFailedError):
            await asyncio.wait_for(get_title(pool), timeout=10)
        # ... and the next session is opened once the server is back.
        async with tickets_http_server(db, port=port):
            title = await call_after_restart(pool, get_title)
        assert title == "Login page returns 500 after password reset"
        assert connection.connects == 2
    finally:
        await pool.close()


async def test_reconnects_after_session_server_restart(tmp_path: Path) -> None:
    # Servers on mcp 1.x (and other handshake-era stacks) keep a session per client; after a
    # restart they answer the old session id with 404 "Session not found", and the client must
    # open a new session (MCP spec, streamable HTTP, session management).
    port = free_port()
    script = tmp_path / "session_server.py"
    script.write_text(SESSION_SERVER)
    pool = McpPool(http_registry(tmp_path, port, "legacy"), TOKEN_ENV)
    connection = pool.connection("legacy")

    async def server_pid(pool: McpPool) -> int:
        result = await pool.connection("legacy").call_tool("pid", {}, None)
        assert not result.is_error, result_text(result)
        return int(result_text(result))

    try:
        async with python_server(script, port, tmp_path / "first.log") as first:
            assert await server_pid(pool) == first
        async with python_server(script, port, tmp_path / "second.log") as second:
            assert await call_after_restart(pool, server_pid) == second
        assert connection.connects == 2
    finally:
        await pool.close()


async def test_stdio_child_gets_only_listed_env_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    environ = {"TOKEN": "tok-8d1e-0f6a2b9c71"}
    # The server requires exactly this token: a call succeeds only if the header was expanded.
    async with tickets_http_server(tmp_path / "tickets.db", token=environ["TOKEN"]) as server:
        servers = registry(
            tmp_path,
            f"""
        [servers.tickets]
        transport = "http"
        url = "{server.url}"
        headers = {{ Authorization = "Bearer ${{TOKEN}}" }}
        trust = "trusted"
        timeout = "10s"
        """,
            environ,
        )
        # The loaded config keeps the template; the value exists only when a connection opens.
        assert servers["tickets"].headers == {"Authorization": "Bearer ${TOKEN}"}
        assert expand(servers["tickets"].headers["Authorization"], environ) == "Bearer tok-8d1e-0f6a2b9c71"
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


def test_breaker_thresholds_come_from_servers_toml(tmp_path: Path) -> None:
    servers = registry(
        tmp_path,
        """
    [servers.tickets]
    transport = "stdio"
    command = "python"

    [servers.tickets.breaker]
    failures = 2
    window = "1m"
    cooldown = "1500ms"
    """,
        {},
    )
    breaker = McpPool(servers, {}).connection("tickets").breaker
    assert (breaker.threshold, breaker.window, breaker.cooldown) == (2, 60.0, 1.5)
    defaults = McpPool(registry(tmp_path, TICKETS_STDIO, {}), {}).connection("tickets").breaker
    assert (defaults.threshold, defaults.window, defaults.cooldown) == (5, 30.0, 10.0)


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("failures = 0", "key 'servers.tickets.breaker.failures': Input should be greater than or equal to 1"),
        ('window = "soon"', "key 'servers.tickets.breaker.window': not a duration: 'soon'"),
        ('cooldown = "0s"', "key 'servers.tickets.breaker.cooldown': must be a positive duration"),
        ("failure = 3", "key 'servers.tickets.breaker.failure': unknown key"),
    ],
)
def test_bad_breaker_settings_name_the_file_and_the_key(tmp_path: Path, table: str, error: str) -> None:
    path = tmp_path / "servers.toml"
    path.write_text(f'[servers.tickets]\ntransport = "stdio"\ncommand = "python"\n[servers.tickets.breaker]\n{table}\n')
    with pytest.raises(ConfigError) as raised:
        load_servers(path, {})
    assert str(raised.value).startswith(f"{path}: {error}")


@pytest.mark.parametrize("issuer", ["javascript:alert(1)", "ftp://login.internal", "login.internal", ""])
def test_an_oauth_issuer_must_be_an_http_url(tmp_path: Path, issuer: str) -> None:
    path = tmp_path / "servers.toml"
    path.write_text(
        '[servers.wiki]\ntransport = "http"\nurl = "https://wiki.internal/mcp"\n'
        f'[servers.wiki.oauth]\nclient_id = "airlock"\nclient_secret = "s3cret-value"\nissuer = "{issuer}"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_servers(path, {})
    assert str(raised.value).startswith(f"{path}: key 'servers.wiki.oauth.issuer': String should match pattern")
