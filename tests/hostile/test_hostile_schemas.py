"""A tool's input schema is data, not a program: it cannot make the worker fetch a URL or freeze.

A hostile MCP server (tests/support/schema_mcp.py, real stdio) lists tools whose schemas attack
the validator that checks the model's arguments inside the workflow:
- a `$ref` to a loopback HTTP listener the test runs: the listener must receive no request,
  neither during the run nor when its history is replayed (the model hears the tool's schema
  cannot be used);
- `"pattern": "^(\\w+\\s?)*$"` against an ordinary 40-word sentence, which Python's backtracking
  `re` takes hours over while holding the GIL: the run must finish promptly, and another run on
  the same worker (a real `python worker.py` process) must not stall;
- a pattern the linear-time engine cannot run (a lookahead): the model hears why.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker
from tests.support.runs import workflow_id
from tests.support.schema_project import calls_received, said_after_refusal, schema_project
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 30.0
BACKTRACKING = r"^(\w+\s?)*$"
SENTENCE = (
    "Please move the quarterly planning meeting with the regional sales team from Tuesday morning "
    "to Thursday afternoon because several people will be travelling back from the customer "
    "conference and would otherwise miss the whole discussion about next year's travel budget."
)


@contextlib.contextmanager
def loopback_listener() -> Iterator[tuple[int, list[str]]]:
    """An HTTP listener on 127.0.0.1 that serves a schema and records every request path."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = json.dumps({"type": "integer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_remote_ref_is_never_fetched_during_the_run_or_its_replay(client: Client, tmp_path: Path) -> None:
    with loopback_listener() as (port, requests):
        url = f"http://127.0.0.1:{port}/x"
        tools = [{"name": "lookup", "inputSchema": {"type": "object", "properties": {"x": {"$ref": url}}}}]
        project = schema_project(tmp_path, tools, {"schemer": said_after_refusal("lookup", {"x": 1})})
        async with airlock_worker(client, project):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="schemer", input="Look up x.", requester="carol"),
                id=workflow_id("remote-ref"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        assert requests == [], "the worker fetched the schema's $ref"
        assert "Not run: Error: lookup was not called: the tool's input schema cannot be used" in result.output
        assert "and Airlock fetches nothing" in result.output
        assert calls_received(project) == [], "a call its schema could not check reached the server"
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
        assert requests == [], "replaying the run fetched the schema's $ref"


async def test_a_backtracking_pattern_neither_freezes_the_worker_nor_stalls_another_run(
    client: Client, tmp_path: Path
) -> None:
    assert len(SENTENCE.split()) == 40
    tools = [
        {
            "name": "note",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string", "pattern": BACKTRACKING}}},
        },
        {"name": "peek", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    ]
    scripts = {
        "writer": said_after_refusal("note", {"text": SENTENCE}),
        "bystander": [{"tool_call": {"name": "peek", "arguments": {"text": "hello"}}}, {"message": "Peeked."}],
    }
    project = schema_project(tmp_path, tools, scripts)
    address = client.service_client.config.target_host
    # A real worker process: a regex that holds the GIL would freeze this test's loop too.
    async with worker_process(project_env(project, address)):
        writer = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="writer", input="Write the note.", requester="carol"),
            id=workflow_id("backtracking"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        bystander = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="bystander", input="Peek.", requester="carol"),
            id=workflow_id("bystander"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        written, peeked = await asyncio.wait_for(
            asyncio.gather(writer.result(), bystander.result()),
            RUN_DEADLINE_S,
        )
    assert "Not run: Error: note was not called: the arguments do not match" in written.output
    assert "does not match" in written.output.rpartition("input schema:")[2]
    assert peeked.output == "Peeked."
    assert calls_received(project) == [{"tool": "peek", "arguments": {"text": "hello"}}]
    for handle in (writer, bystander):
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)


@pytest.mark.parametrize("policy", ["auto", "approve"])
async def test_a_pattern_the_linear_engine_cannot_run_makes_the_tool_unusable(
    client: Client, tmp_path: Path, policy: str
) -> None:
    lookahead = "^(?=.*[0-9])[a-z0-9]+$"
    tools = [
        {
            "name": "code",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string", "pattern": lookahead}}},
        }
    ]
    script = said_after_refusal("code", {"text": "abc1"})
    project = schema_project(tmp_path, tools, {"coder": script}, {"coder": policy})
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="coder", input="Send the code.", requester="carol"),
            id=workflow_id("lookahead"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        audit = await handle.query("audit", result_type=list)
    assert "Not run: Error: code was not called: the tool's input schema cannot be used" in result.output
    assert "not supported by Airlock's linear-time matcher (RE2)" in result.output
    assert calls_received(project) == []
    assert audit == [], "nobody is asked to approve a call that cannot run"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
