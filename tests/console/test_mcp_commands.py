"""`airlock mcp tools` / `airlock mcp call` against real servers, and a 401 that names its server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, load_servers
from tests.support.airlock_cli import airlock
from tests.support.everything import everything_http, everything_servers

pytestmark = pytest.mark.integration  # runs the CLI against MCP servers

TICKETS = """
[servers.tickets]
transport = "stdio"
command = "python"
args = ["-m", "mcp_servers.tickets"]
env = ["TICKETS_DB"]
trust = "trusted"
"""
AGENT = """
name = "support"
model = "scripted"
instructions = "x"
mcp_servers = ["tickets"]
[tools]
get_ticket = "approve"
"""


async def test_mcp_tools_lists_annotations_and_the_policy_for_an_agent(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "support.toml").write_text(AGENT)
    (tmp_path / "servers.toml").write_text(TICKETS)
    env = {
        "AIRLOCK_MCP_SERVERS_FILE": str(tmp_path / "servers.toml"),
        "AIRLOCK_AGENTS_DIR": str(tmp_path / "agents"),
        "TICKETS_DB": str(tmp_path / "tickets.db"),
    }
    default = (await airlock("mcp", "tools", "tickets", "-o", "json", home=tmp_path, env=env)).json()
    agent = (
        await airlock("mcp", "tools", "tickets", "--agent", "support", "-o", "json", home=tmp_path, env=env)
    ).json()
    by_name = {row["name"]: row for row in default}
    assert by_name["get_ticket"]["policy"] == "auto"  # trusted and readOnlyHint
    assert by_name["get_ticket"]["annotations"]["readOnlyHint"] is True
    assert by_name["close_ticket"]["policy"] == "approve"
    assert {row["name"]: row["policy"] for row in agent}["get_ticket"] == "approve"  # the agent's rule wins


async def test_mcp_call_prints_what_the_model_would_see(tmp_path: Path) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        (tmp_path / "servers.toml").write_text(everything_servers(url))
        env = {"AIRLOCK_MCP_SERVERS_FILE": str(tmp_path / "servers.toml")}
        ran = await airlock("mcp", "call", "everything", "get-resource-links", '{"count": 2}', home=tmp_path, env=env)
        raw = await airlock(
            "mcp", "call", "everything", "get-sum", '{"a": 2, "b": 3}', "-o", "json", home=tmp_path, env=env
        )
        bad = await airlock("mcp", "call", "nowhere", "x", "{}", home=tmp_path, env=env)
    assert ran.code == 0, ran.describe()
    assert ran.out.count("[resource link] uri: demo://resource/dynamic/") == 2
    assert "5" in json.dumps(raw.json()["content"])
    assert bad.code == 1 and "unknown server 'nowhere'" in bad.err


@pytest.fixture
async def locked_server() -> AsyncIterator[int]:
    """An HTTP server that refuses everything with 401 and a Bearer challenge."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        writer.write(
            b'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer error="invalid_token", '
            b'error_description="token expired"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_a_401_is_reported_naming_the_server_and_the_reason(tmp_path: Path, locked_server: int) -> None:
    path = tmp_path / "servers.toml"
    path.write_text(
        f'[servers.locked]\ntransport = "http"\nurl = "http://127.0.0.1:{locked_server}/mcp"\n'
        'headers = { Authorization = "Bearer ${LOCKED_TOKEN}" }\ntimeout = "5s"\n'
    )
    environ = {"LOCKED_TOKEN": "s3cret-token-value"}
    pool = McpPool(load_servers(path, environ), environ, token_dir=tmp_path / "oauth")
    try:
        with pytest.raises(ServerFailedError) as raised:
            await pool.connection("locked").list_tools()
    finally:
        await pool.close()
    message = str(raised.value)
    assert "401 unauthorized from server 'locked': token expired" in message, message
    assert "ExceptionGroup" not in message and "s3cret" not in message
