"""The worker's elicitation callback: what a server may ask, and which call a request belongs to.

The bounds are checked on the spec's own shapes; the attribution against real servers: the
asking server over stdio (2026-07-28, requests inside the call's result) and server-everything
over streamable HTTP (2025-11-25, `elicitation/create` in the middle of a call).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from mcp_types import ElicitRequestFormParams, ElicitRequestURLParams

from mcp_servers.client import elicitation
from mcp_servers.client.elicitation import Given, Round, checked_schema, question_of
from mcp_servers.client.errors import QuestionRefusedError
from mcp_servers.client.registry import McpPool, load_servers
from mcp_servers.client.results import result_text
from tests.support.asking import ASKING_STDIO
from tests.support.everything import EVERYTHING, NODE, everything_http, everything_servers

pytestmark = pytest.mark.integration  # starts MCP servers

TRIGGER = "trigger-elicitation-request"
EVERYTHING_STDIO = f"""
[servers.everything_stdio]
transport = "stdio"
command = "{NODE}"
args = ["{EVERYTHING}", "stdio"]
trust = "trusted"
"""
FORM = {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}, "required": ["size"]}


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ([], "not an object"),
        ({"type": "array", "items": {}}, '"type": "object"'),
        ({"type": "object", "properties": {}}, "1 to 30 properties"),
        ({"type": "object", "properties": {"a": {"type": "object"}}}, "not a primitive"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}, "keywords not allowed"),
        ({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}, "multi-select"),
        ({"type": "object", "properties": {"a": {"type": "string", "enum": [1, 2]}}}, "enum must list"),
        ({"type": "object", "properties": {"a b": {"type": "string"}}}, "not a plain name"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "required list"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "$ref": "#"}, "keywords the spec does not allow"),
        ({"type": "object", "properties": {f"f{i}": {"type": "string"} for i in range(31)}}, "1 to 30 properties"),
        ({"type": "object", "properties": {"a": {"type": "string", "description": "x" * 20_000}}}, "bytes, more than"),
    ],
)
def test_a_schema_outside_the_spec_is_refused(schema: Any, why: str) -> None:
    with pytest.raises(QuestionRefusedError, match=why):
        checked_schema(schema)


def test_the_specs_field_kinds_are_accepted() -> None:
    schema = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "format": "email", "minLength": 3},
            "n": {"type": "number", "minimum": 0, "maximum": 9},
            "ok": {"type": "boolean", "default": False},
            "pet": {"type": "string", "enum": ["cat", "dog"], "enumNames": ["Cat", "Dog"]},
            "hero": {"type": "string", "oneOf": [{"const": "h1", "title": "Superman"}]},
            "fish": {"type": "array", "items": {"anyOf": [{"const": "f1", "title": "Tuna"}]}, "maxItems": 1},
        },
    }
    assert checked_schema(schema) == schema


def test_url_mode_needs_an_http_url_and_its_hash_ignores_the_elicitation_id() -> None:
    first = question_of(ElicitRequestURLParams(message="Log in", url="https://example.com/a", elicitation_id="1"))
    again = question_of(ElicitRequestURLParams(message="Log in", url="https://example.com/a", elicitation_id="2"))
    assert first.sha256 == again.sha256 and first.mode == "url"
    for url in ("javascript:alert(1)", "https://example.com/a b", "https://x/" + "a" * 3000):
        with pytest.raises(QuestionRefusedError, match="http"):
            question_of(ElicitRequestURLParams(message="Log in", url=url, elicitation_id="1"))


def test_a_round_answers_each_given_answer_once_and_cancels_the_rest() -> None:
    params = ElicitRequestFormParams(message="How many?", requested_schema=FORM)
    sha = question_of(params).sha256
    asking = Round(given=[Given(sha, "accept", {"size": 2})])
    assert asking.respond(params).content == {"size": 2}
    second = asking.respond(params)
    assert second.action == "cancel" and asking.asked is not None and asking.asked.sha256 == sha
    declined = Round(given=[Given(sha, "decline", {"size": 2})])
    assert (declined.respond(params).action, declined.respond(params).content) == ("decline", None)
    hostile = Round()
    result = hostile.respond(ElicitRequestFormParams(message="x" * 3000, requested_schema=FORM))
    assert result.action == "cancel" and hostile.refused is not None and hostile.asked is None


async def test_requests_are_matched_to_their_call(tmp_path: Path) -> None:
    servers_file = tmp_path / "servers.toml"
    async with everything_http(tmp_path / "everything.log") as url:
        servers_file.write_text(ASKING_STDIO + everything_servers(url) + EVERYTHING_STDIO)
        environ = {**os.environ, "ASKING_LOG": str(tmp_path / "asking.jsonl")}
        pool = McpPool(load_servers(servers_file, environ), environ)
        try:
            # 2026-07-28: the requests come back inside each call's own result.
            await _two_calls_each_get_their_question(pool, "asking", "book_room")
            # 2025-11-25 over streamable HTTP: a request arrives on its call's own POST stream, which
            # the SDK reads in the calling task, so concurrent calls on one session are told apart.
            await _two_calls_each_get_their_question(pool, "everything", TRIGGER)
            # 2025-11-25 over stdio: one call in flight, so the request is that call's ...
            stdio = pool.connection("everything_stdio")
            alone = Round()
            await stdio.call_tool(TRIGGER, {}, None, asking=alone)
            assert alone.asked is not None and alone.unanswered == 1
            # ... but with two in flight nobody can tell whose it is: neither call is credited with
            # a question, and the server hears cancel for both.
            pair = [Round(), Round()]
            outputs = await asyncio.gather(*(stdio.call_tool(TRIGGER, {}, None, asking=r) for r in pair))
            assert [(r.asked, r.unanswered) for r in pair] == [(None, 0), (None, 0)]
            assert all("User cancelled" in result_text(o) for o in outputs)
            assert elicitation._in_flight == {}
        finally:
            await pool.close()


async def _two_calls_each_get_their_question(pool: McpPool, server: str, tool: str) -> None:
    connection = pool.connection(server)
    await connection.list_tools()
    rounds = [Round(), Round()]
    arguments = [{"room": "X"}, {"room": "Y"}] if tool == "book_room" else [{}, {}]
    results = await asyncio.gather(
        *(connection.call_tool(tool, args, None, asking=r) for args, r in zip(arguments, rounds, strict=True))
    )
    assert [r.unanswered for r in rounds] == [1, 1] and all(r.asked is not None for r in rounds)
    if tool == "book_room":
        assert [r.asked.message for r in rounds if r.asked] == [
            "How many people for room X?",
            "How many people for room Y?",
        ]
    assert all("ancel" in result_text(result) for result in results)
