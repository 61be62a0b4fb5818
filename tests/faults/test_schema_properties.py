"""Tool arguments that break the tool's input schema are refused before any call or approval.

Properties run over the real schemas, listed from the bundled tickets server and the pinned
third-party filesystem server (tests/peers); one end-to-end run shows the same refusal inside
a workflow: the model hears why, nobody is asked to approve, nothing is written.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client

from mcp_servers.client.registry import McpPool, load_servers
from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_replays, history_text
from tests.support.project import TICKETS_STDIO, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from tests.support.schema_strategies import valid_object, wrong_type_value
from workflows.arguments import parse_arguments
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # lists schemas from real MCP servers

PEERS = Path(__file__).resolve().parents[1] / "peers"
FILESYSTEM_SERVER = PEERS / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
# No example database: the tree stays clean and every run draws afresh within the bound.
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

Schemas = dict[tuple[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
async def live_schemas(tmp_path_factory: pytest.TempPathFactory) -> Schemas:
    """Every tool's input schema, as the real servers list them over stdio."""
    if shutil.which("node") is None or not FILESYSTEM_SERVER.exists():
        pytest.fail("the filesystem peer is missing: install node and run `npm ci --prefix tests/peers`")
    root = tmp_path_factory.mktemp("schemas")
    servers = root / "servers.toml"
    servers.write_text(
        TICKETS_STDIO
        + f"""
[servers.files]
transport = "stdio"
command = "node"
args = ["{FILESYSTEM_SERVER}", "{root}"]
trust = "trusted"
"""
    )
    environ = {"TICKETS_DB": str(root / "tickets.db")}
    pool = McpPool(load_servers(servers, environ), environ)
    try:
        return {
            (server, tool.name): tool.input_schema
            for server in ("tickets", "files")
            for tool in await pool.connection(server).list_tools()
        }
    finally:
        await pool.close()


def validate(schema: dict[str, Any], arguments: Any) -> tuple[dict[str, Any] | None, str | None]:
    """What the durable tool does with the model's raw argument string."""
    return parse_arguments(json.dumps(arguments), schema)


def tools_with(schemas: Schemas, wanted: Any) -> list[tuple[str, str]]:
    """Tools with at least one top-level property for which `wanted(property_schema)` holds."""
    return sorted(
        key for key, schema in schemas.items() if any(wanted(sub) for sub in schema.get("properties", {}).values())
    )


def test_the_real_schemas_were_listed(live_schemas: Schemas) -> None:
    tools = {tool for _, tool in live_schemas}
    assert {"get_ticket", "close_ticket", "comment_on_ticket", "write_file", "move_file"} <= tools
    assert len(live_schemas) >= 15


def test_valid_arguments_are_accepted(live_schemas: Schemas) -> None:
    # Without this the properties below would also pass for a validator that refuses everything.
    @PROPERTY_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(live_schemas)))
        arguments = data.draw(valid_object(live_schemas[key]), label=str(key))
        assert validate(live_schemas[key], arguments) == (arguments, None)

    check()


def test_wrong_types_are_refused_naming_the_field(live_schemas: Schemas) -> None:
    @PROPERTY_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(tools_with(live_schemas, lambda _: True)))
        schema = live_schemas[key]
        arguments = data.draw(valid_object(schema))
        field = data.draw(st.sampled_from(sorted(schema["properties"])))
        arguments[field] = data.draw(wrong_type_value(schema["properties"][field]), label=field)
        accepted, problem = validate(schema, arguments)
        assert accepted is None and problem is not None
        assert f"{field}: " in problem, problem

    check()


def test_undeclared_fields_are_refused_naming_them(live_schemas: Schemas) -> None:
    @PROPERTY_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(live_schemas)))
        schema = live_schemas[key]
        arguments = data.draw(valid_object(schema))
        extra = data.draw(
            st.text(string.ascii_letters + "_", min_size=1, max_size=12).filter(
                lambda name: name not in schema.get("properties", {})
            ),
            label="extra",
        )
        arguments[extra] = data.draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
        accepted, problem = validate(schema, arguments)
        assert accepted is None and problem is not None
        assert repr(extra) in problem, problem

    check()


def test_strings_over_their_max_length_are_refused(live_schemas: Schemas) -> None:
    bounded = tools_with(live_schemas, lambda sub: "maxLength" in sub)
    assert bounded, "the tickets server bounds its strings"

    @PROPERTY_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(bounded))
        schema = live_schemas[key]
        arguments = data.draw(valid_object(schema))
        field = data.draw(
            st.sampled_from(sorted(name for name, sub in schema["properties"].items() if "maxLength" in sub))
        )
        limit = schema["properties"][field]["maxLength"]
        arguments[field] = "x" * data.draw(st.integers(limit + 1, limit + 1_000_000), label="length")
        accepted, problem = validate(schema, arguments)
        assert accepted is None and problem is not None
        assert f"{field}: " in problem and "too long" in problem, problem
        assert len(problem) < 2_000, "the error quotes the value cut short, not whole"

    check()


def test_ticket_ids_with_path_traversal_are_refused(live_schemas: Schemas) -> None:
    with_ids = tools_with(live_schemas, lambda sub: sub.get("title") == "Ticket Id")
    assert len(with_ids) == 4

    @PROPERTY_SETTINGS
    @given(st.sampled_from(with_ids), st.text(max_size=8), st.text(max_size=8))
    def check(key: tuple[str, str], before: str, after: str) -> None:
        schema = live_schemas[key]
        arguments = {name: "T-1" if name == "ticket_id" else None for name in schema.get("required", [])}
        arguments["ticket_id"] = f"{before}../{after}"
        accepted, problem = validate(schema, arguments)
        assert accepted is None and problem is not None and "ticket_id: " in problem

    check()


def test_arguments_that_are_not_a_json_object_are_refused(live_schemas: Schemas) -> None:
    @PROPERTY_SETTINGS
    @given(
        st.sampled_from(sorted(live_schemas)),
        st.one_of(
            st.lists(st.integers(), max_size=3).map(json.dumps),
            st.text(max_size=10).map(json.dumps),
            st.integers().map(json.dumps),
            st.just("null"),
            st.just("true"),
            # "" is not here on purpose: an empty argument string means "no arguments" (`{}`).
            st.text(min_size=1, max_size=20).filter(lambda raw: not _is_json(raw)),
        ),
    )
    def check(key: tuple[str, str], raw: str) -> None:
        accepted, problem = parse_arguments(raw, live_schemas[key])
        assert accepted is None and problem is not None
        assert "not valid JSON" in problem or "must be a JSON object" in problem, problem

    check()


def test_missing_required_fields_are_refused_naming_them(live_schemas: Schemas) -> None:
    @PROPERTY_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(k for k, s in live_schemas.items() if s.get("required"))))
        schema = live_schemas[key]
        arguments = data.draw(valid_object(schema))
        field = data.draw(st.sampled_from(schema["required"]))
        del arguments[field]
        accepted, problem = validate(schema, arguments)
        assert accepted is None and problem is not None and repr(field) in problem, problem

    check()


def test_filesystem_paths_are_free_strings_in_the_schema(live_schemas: Schemas) -> None:
    # Honest about what the schema holds: it does not forbid `../`, so the server must.
    for tool in ("read_text_file", "write_file", "get_file_info"):
        schema = live_schemas[("files", tool)]
        arguments = {name: "x" for name in schema["required"]} | {"path": "/tmp/notes/../../etc/passwd"}
        assert validate(schema, arguments) == (arguments, None)


@pytest.mark.parametrize("escape", ["../outside.txt", "{root}/../outside.txt", "{root}/sub/../../outside.txt"])
async def test_filesystem_server_refuses_paths_outside_its_root(tmp_path: Path, escape: str) -> None:
    root = (tmp_path / "root").resolve()
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    servers = tmp_path / "servers.toml"
    servers.write_text(f"""
[servers.files]
transport = "stdio"
command = "node"
args = ["{FILESYSTEM_SERVER}", "{root}"]
trust = "trusted"
""")
    pool = McpPool(load_servers(servers, {}), {})
    path = escape.format(root=root)
    try:
        files = pool.connection("files")
        written = await files.call_tool("write_file", {"path": path, "content": "escaped"}, None)
        read = await files.call_tool("read_text_file", {"path": path}, None)
    finally:
        await pool.close()
    for result in (written, read):
        assert result.is_error
        assert "Access denied" in json.dumps([block.model_dump(mode="json") for block in result.content])
    assert not outside.exists()


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except json.JSONDecodeError:
        return False
    return True


INVALID_WRITES = {
    "support": [
        {
            "tool_calls": [
                {"name": "close_ticket", "arguments": {"ticket_id": "../../etc/passwd", "resolution": "burnt"}},
                {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": 5, "notify": True}},
                {"name": "assign_ticket", "arguments": {"ticket_id": "T-1", "assignee": "a" * 100_000}},
            ]
        },
        {"message": "I could not change anything."},
    ]
}


async def test_invalid_write_arguments_never_reach_an_approver_or_the_server(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=INVALID_WRITES)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Tidy up T-1.", requester="carol"),
            id=workflow_id("bad-args"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
    assert result.output == "I could not change anything."
    assert (result.approvals, audit, result.tool_calls) == ([], [], 0)
    assert count_writes(project.tickets_db) == 0
    assert len(spy.calls) == 2
    outputs = {
        item["call_id"]: json.dumps(item["output"])
        for item in spy.calls[1].input
        if item.get("type") == "function_call_output"
    }
    close, comment, assign = (outputs[f"call-support-0-{n}"] for n in range(3))
    assert "close_ticket was not called" in close
    assert "ticket_id: " in close and "resolution: " in close and "burnt" in close
    assert "comment_on_ticket was not called" in comment and "text: " in comment and "'notify'" in comment
    assert "assign_ticket was not called" in assign and "assignee: " in assign and "too long" in assign
    assert len(assign) < 2_000, "the huge value is not echoed back whole"
    history = await history_text(handle)
    assert "awaiting_approval" not in history, "the run never waited for an approver"
    assert "airlock.write" not in history
    await assert_replays(handle)
