"""The tickets MCP server over its real transports (stdio and streamable HTTP), and its store."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client._transport import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, RequestParamsMeta, TextContent

from mcp_servers.tickets.store import TicketStore, count_writes
from tests.support.tickets_http import HttpServer, tickets_http_server

pytestmark = pytest.mark.integration  # starts the tickets server

REPO_ROOT = Path(__file__).resolve().parents[2]
IDEMPOTENCY_META_KEY = "airlock/idempotency_key"
STARTUP_DEADLINE_S = 15.0
SHUTDOWN_DEADLINE_S = 10.0
READY_LINE = re.compile(r"tickets MCP server listening on (http://\S+)")

EXPECTED_ANNOTATIONS: dict[str, dict[str, bool]] = {
    "search_tickets": {"read_only_hint": True, "open_world_hint": False},
    "get_ticket": {"read_only_hint": True, "open_world_hint": False},
    "comment_on_ticket": {
        "read_only_hint": False,
        "destructive_hint": False,
        "idempotent_hint": False,
        "open_world_hint": False,
    },
    "assign_ticket": {
        "read_only_hint": False,
        "destructive_hint": False,
        "idempotent_hint": True,
        "open_world_hint": False,
    },
    "close_ticket": {
        "read_only_hint": False,
        "destructive_hint": True,
        "idempotent_hint": True,
        "open_world_hint": False,
    },
}
WRITE_TOOLS = {"comment_on_ticket", "assign_ticket", "close_ticket"}


def _server_env(db_path: Path) -> dict[str, str]:
    return {"TICKETS_DB": str(db_path), "PYTHONPATH": str(REPO_ROOT)}


def _stdio_client(db_path: Path) -> Client:
    return Client(
        StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcp_servers.tickets"],
            env=_server_env(db_path),
            cwd=REPO_ROOT,
        )
    )


def _http(server: HttpServer) -> Transport:
    """A streamable HTTP transport to `server` that sends its bearer token."""
    return streamable_http_client(server.url, http_client=create_mcp_http_client(headers=server.headers))


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _key(key: str) -> RequestParamsMeta:
    meta: RequestParamsMeta = {IDEMPOTENCY_META_KEY: key}
    return meta


@pytest.fixture
async def http_server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    """A tickets server over streamable HTTP on a free loopback port."""
    async with tickets_http_server(tmp_path / "tickets.db") as server:
        yield server


async def test_stdio_tools_declare_annotations_and_strict_inputs(tmp_path: Path) -> None:
    async with _stdio_client(tmp_path / "tickets.db") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == set(EXPECTED_ANNOTATIONS)
    for name, expected in EXPECTED_ANNOTATIONS.items():
        annotations = tools[name].annotations
        assert annotations is not None, name
        assert annotations.model_dump(exclude_none=True) == expected, name
        assert tools[name].description, name
    for name in WRITE_TOOLS:
        assert (tools[name].meta or {}).get(IDEMPOTENCY_META_KEY) == "supported", name
        assert tools[name].input_schema["properties"]["ticket_id"]["pattern"] == r"^T-\d{1,6}$"
    assert tools["close_ticket"].input_schema["properties"]["resolution"]["enum"][0] == "fixed"
    assert tools["search_tickets"].input_schema["properties"]["limit"]["maximum"] == 100


async def test_stdio_get_ticket_returns_seeded_ticket(tmp_path: Path) -> None:
    async with _stdio_client(tmp_path / "tickets.db") as client:
        result = await client.call_tool("get_ticket", {"ticket_id": "T-1"})

    assert not result.is_error, _text(result)
    ticket = result.structured_content
    assert ticket is not None
    assert ticket["id"] == "T-1"
    assert ticket["title"] == "Login page returns 500 after password reset"
    assert ticket["status"] == "open"
    assert ticket["comments"][0]["author"] == "support"


async def test_stdio_get_ticket_unknown_or_malformed_id_is_a_tool_error(tmp_path: Path) -> None:
    async with _stdio_client(tmp_path / "tickets.db") as client:
        unknown = await client.call_tool("get_ticket", {"ticket_id": "T-999"})
        malformed = await client.call_tool("get_ticket", {"ticket_id": "DROP TABLE"})

    assert unknown.is_error
    assert "Ticket T-999 does not exist" in _text(unknown)
    assert malformed.is_error
    assert "ticket_id" in _text(malformed)


async def test_stdio_repeated_idempotency_key_applies_write_once(tmp_path: Path) -> None:
    db_path = tmp_path / "tickets.db"
    async with _stdio_client(db_path) as client:
        first = await client.call_tool("close_ticket", {"ticket_id": "T-1"}, meta=_key("wf/c1"))
        second = await client.call_tool("close_ticket", {"ticket_id": "T-1"}, meta=_key("wf/c1"))
        ticket = await client.call_tool("get_ticket", {"ticket_id": "T-1"})

    assert not first.is_error, _text(first)
    assert first.structured_content == {
        "ticket_id": "T-1",
        "status": "closed",
        "resolution": "fixed",
        "previous_status": "open",
    }
    assert second.structured_content == first.structured_content
    assert _text(second) == _text(first)
    assert count_writes(db_path, "close_ticket") == 1
    assert ticket.structured_content is not None
    assert ticket.structured_content["status"] == "closed"


async def test_stdio_writes_without_key_apply_every_time(tmp_path: Path) -> None:
    db_path = tmp_path / "tickets.db"
    async with _stdio_client(db_path) as client:
        for _ in range(2):
            result = await client.call_tool("comment_on_ticket", {"ticket_id": "T-3", "text": "Checked the VAT table."})
            assert not result.is_error, _text(result)
        ticket = await client.call_tool("get_ticket", {"ticket_id": "T-3"})

    assert count_writes(db_path, "comment_on_ticket") == 2
    assert ticket.structured_content is not None
    texts = [c["text"] for c in ticket.structured_content["comments"]]
    assert texts.count("Checked the VAT table.") == 2


async def test_stdio_key_reused_for_another_call_is_refused(tmp_path: Path) -> None:
    db_path = tmp_path / "tickets.db"
    async with _stdio_client(db_path) as client:
        await client.call_tool("assign_ticket", {"ticket_id": "T-4", "assignee": "alice"}, meta=_key("wf/a"))
        other = await client.call_tool("assign_ticket", {"ticket_id": "T-4", "assignee": "bob"}, meta=_key("wf/a"))

    assert other.is_error
    assert "already used for a different call" in _text(other)
    assert count_writes(db_path) == 1


async def test_http_serves_reads_and_writes(http_server: HttpServer) -> None:
    async with Client(_http(http_server)) as client:
        found = await client.call_tool("search_tickets", {"query": "password", "status": "open"})
        assigned = await client.call_tool(
            "assign_ticket", {"ticket_id": "T-1", "assignee": "alice"}, meta=_key("wf/h1")
        )
        replayed = await client.call_tool(
            "assign_ticket", {"ticket_id": "T-1", "assignee": "alice"}, meta=_key("wf/h1")
        )

    assert not found.is_error, _text(found)
    assert found.structured_content == {
        "result": [
            {
                "id": "T-1",
                "title": "Login page returns 500 after password reset",
                "status": "open",
                "assignee": None,
            }
        ]
    }
    assert assigned.structured_content == {
        "ticket_id": "T-1",
        "assignee": "alice",
        "previous_assignee": None,
    }
    assert replayed.structured_content == assigned.structured_content
    assert count_writes(http_server.db_path, "assign_ticket") == 1


async def test_key_is_honoured_across_server_processes(http_server: HttpServer) -> None:
    arguments = {"ticket_id": "T-2", "resolution": "duplicate"}
    async with _stdio_client(http_server.db_path) as stdio:
        via_stdio = await stdio.call_tool("close_ticket", arguments, meta=_key("wf/x1"))
    async with Client(_http(http_server)) as http:
        via_http = await http.call_tool("close_ticket", arguments, meta=_key("wf/x1"))

    assert not via_stdio.is_error, _text(via_stdio)
    assert via_http.structured_content == via_stdio.structured_content
    assert count_writes(http_server.db_path, "close_ticket") == 1


def test_store_concurrent_calls_with_one_key_apply_once(tmp_path: Path) -> None:
    db_path = tmp_path / "tickets.db"
    store = TicketStore.open(db_path)

    def close() -> dict[str, Any]:
        return dict(store.close("T-4", "wont_fix", idempotency_key="wf/race"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(close) for _ in range(16)]
        results = [future.result() for future in futures]

    assert all(result == results[0] for result in results)
    assert results[0]["previous_status"] == "open"
    assert count_writes(db_path) == 1


def test_store_seeds_only_an_empty_database(tmp_path: Path) -> None:
    db_path = tmp_path / "nested" / "tickets.db"
    store = TicketStore.open(db_path)
    store.comment("T-5", "Confirmed with the customer.", "alice")
    reopened = TicketStore.open(db_path)

    assert [t["id"] for t in reopened.search()] == ["T-1", "T-2", "T-3", "T-4", "T-5"]
    assert reopened.get("T-5")["comments"][-1]["text"] == "Confirmed with the customer."
    assert [t["id"] for t in reopened.search("reset", status="closed")] == ["T-5"]
