"""One call's timeout or failure never breaks another call in flight on the same server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from activities.airlock_activities import result_text
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, load_servers
from tests.support.conditions import condition, wait_for
from tests.support.everything import everything_http, everything_servers

pytestmark = pytest.mark.integration  # starts MCP servers

LONG = "trigger-long-running-operation"


async def _pool(tmp_path: Path, url: str) -> McpPool:
    path = tmp_path / "servers.toml"
    path.write_text(everything_servers(url))
    return McpPool(load_servers(path, {}), {})


async def test_a_timed_out_call_leaves_the_other_calls_on_the_session_alone(tmp_path: Path) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        pool = await _pool(tmp_path, url)
        connection = pool.connection("everything")
        try:
            healthy = asyncio.create_task(connection.call_tool(LONG, {"duration": 3, "steps": 3}, None))
            await wait_for(condition(lambda: connection.in_flight == 1), timeout=20, what="the healthy call to start")
            with pytest.raises(ServerFailedError, match="timed out"):
                await connection.call_tool(LONG, {"duration": 60, "steps": 1}, None, request_timeout=0.5)
            assert not healthy.done(), "the healthy call must still be in flight when the other times out"
            result = await asyncio.wait_for(healthy, 20)
            echoed = await connection.call_tool("echo", {"message": "still here"}, None)
        finally:
            await pool.close()
    assert "Long running operation completed" in result_text(result)
    assert "still here" in result_text(echoed)
    assert connection.connects == 1, "a timeout is not a broken session"
    assert connection.breaker.state == "closed"


async def test_a_replaced_session_lets_its_calls_in_flight_finish(tmp_path: Path) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        pool = await _pool(tmp_path, url)
        connection = pool.connection("everything")
        try:
            old = await connection.client()
            healthy = asyncio.create_task(connection.call_tool(LONG, {"duration": 2, "steps": 2}, None))
            await wait_for(condition(lambda: connection.in_flight == 1), timeout=20, what="the call to start")
            connection.invalidate(old)  # as a broken-session error on another call does
            fresh = await connection.call_tool("echo", {"message": "new session"}, None)
            assert connection.connects == 2
            assert await connection.client() is not old
            result = await asyncio.wait_for(healthy, 20)
        finally:
            await pool.close()
    assert "new session" in result_text(fresh)
    assert "Long running operation completed" in result_text(result)
