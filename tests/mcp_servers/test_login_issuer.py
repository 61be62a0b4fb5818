"""`airlock mcp login` pins the authorization server: configured, or recorded on the first login.

Two real loopback authorization servers (tests/support/issuer_mcp.py): A is the MCP server's own,
B is one its owner could switch the metadata to. A person logs in through A (the "browser"
follows the authorization URL, which redirects at once to Airlock's loopback listener); then
the MCP server's metadata names B and its tokens stop working. Neither the worker nor a second
login sends anything to B. With `issuer` configured, a server naming another one gets nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.mcp import login
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, ServerConfig
from tests.support.tickets_http import http_server_process

pytestmark = pytest.mark.integration  # starts MCP servers and an issuer

READY = re.compile(r"issuer MCP server listening on (http://\S+)")


@asynccontextmanager
async def issuer_server(events: Path) -> AsyncIterator[str]:
    """One MCP server with its authorization server; yields its MCP URL."""
    env = {**os.environ, "ISSUER_EVENTS": str(events)}
    async with http_server_process(["-m", "tests.support.issuer_mcp"], env, READY) as (url, _, _):
        yield url


def events_of(path: Path) -> list[dict[str, Any]]:
    """What reached an authorization server's endpoints."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def browser(url: str) -> None:
    """A person who says yes: follow the authorization URL to Airlock's loopback redirect."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text


def docs(url: str, **oauth: Any) -> dict[str, ServerConfig]:
    """Server `docs` at `url`, logged into with the authorization code flow."""
    config = {"transport": "http", "url": url, "oauth": {"flow": "authorization_code", **oauth}}
    return {"docs": ServerConfig.model_validate(config)}


async def post(base: str, path: str, body: str = "") -> None:
    """An admin request to a test server (switch the metadata, revoke tokens)."""
    async with httpx.AsyncClient(timeout=10) as http:
        (await http.post(f"{base}{path}", content=body)).raise_for_status()


async def test_the_first_login_records_the_issuer_and_a_later_switch_sends_nothing_there(tmp_path: Path) -> None:
    env = {**os.environ, "AIRLOCK_OAUTH_DIR": str(tmp_path / "oauth")}
    a_events, b_events = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    async with issuer_server(a_events) as a_url, issuer_server(b_events) as b_url:
        a, b = a_url.removesuffix("/mcp"), b_url.removesuffix("/mcp")
        servers = docs(a_url)
        await login("docs", servers, browser=browser, pool_environ=env)
        stored = json.loads((tmp_path / "oauth" / "docs.json").read_text())
        assert stored["authorization_server"]["issuer"].rstrip("/") == a
        assert {e["path"] for e in events_of(a_events)} >= {"/register", "/authorize", "/token"}

        # The worker's tokens work while the metadata names A.
        pool = McpPool(servers, env)
        try:
            assert [t.name for t in await pool.connection("docs").list_tools()] == ["wiki_page"]
        finally:
            await pool.close()

        # Now the server names B and refuses the old token: the worker sends nothing to B.
        await post(a, "/admin/advertise", b)
        await post(a, "/admin/revoke")
        pool = McpPool(servers, env)
        try:
            with pytest.raises(ServerFailedError) as refused:
                await pool.connection("docs").list_tools()
        finally:
            await pool.close()
        assert events_of(b_events) == []
        assert "not the pinned" in str(refused.value), str(refused.value)

        # Nor does a person's new login: the recorded issuer holds until it is changed on purpose.
        with pytest.raises(Exception, match="not the pinned"):
            await login("docs", servers, browser=browser, pool_environ=env)
        assert events_of(b_events) == []


async def test_a_configured_issuer_gets_the_login_and_another_one_gets_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "AIRLOCK_OAUTH_DIR": str(tmp_path / "oauth")}
    a_events, b_events = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    async with issuer_server(a_events) as a_url, issuer_server(b_events) as b_url:
        b = b_url.removesuffix("/mcp")
        # A's metadata names A, but the operator said the login belongs to B.
        with pytest.raises(Exception, match="not the pinned"):
            await login("docs", docs(a_url, issuer=b), browser=browser, pool_environ=env)
        assert events_of(a_events) == [] and events_of(b_events) == []
        assert not (tmp_path / "oauth" / "docs.json").exists()
