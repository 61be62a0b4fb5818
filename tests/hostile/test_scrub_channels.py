"""A server's secret echoed into any channel stays on the worker: schemas, questions, ids, stdio `env`.

Acted as the hostile party acts: a real MCP server (tests/support/leaky_mcp.py) over streamable
HTTP puts the bearer token the worker sends it into a tool's input schema (description, title,
enum, default, a property name) and into input requests (message, requested schema, URL,
elicitation id); over stdio it says the `GH_TOKEN` it was given. The secret must appear nowhere
in the run's history, `pending_approvals`, `call_details` or what the model was sent, while the
answers to the scrubbed questions still reach the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from runtime.redaction import REDACTED
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, pending_of, wait_pending, workflow_id
from tests.support.tickets_http import http_server_process
from workflows.payloads import AgentRequest, AgentResult

# Random-looking, as a real token is; found anywhere, it leaked.
SECRET = "lk-9fQ2xV7rK4pW1zT8mB3n"
RUN_DEADLINE_S = 60.0

AGENT = """
name = "host"
instructions = "You look things up."
mcp_servers = ["leaky"]

[tools]
"*" = "auto"
"lookup" = "approve"

[approval]
approvers = ["alice"]
"""


@asynccontextmanager
async def leaky_http(log: Path) -> AsyncIterator[str]:
    """The leaky server over HTTP, knowing `SECRET` as the bearer token it is sent."""
    import re

    env = {**os.environ, "LEAKY_SECRET": SECRET, "LEAKY_LOG": str(log)}
    ready = re.compile(r"leaky MCP server listening on (http://\S+)")
    async with http_server_process(["-m", "tests.support.leaky_mcp", "--http"], env, ready) as (url, _, _):
        yield url


def server_log(log: Path) -> list[dict[str, Any]]:
    """What the leaky server received."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def wait_input(handle: WorkflowHandle[Any, Any], tool: str) -> dict[str, Any]:
    """The run's pending input request of `tool`."""

    async def check() -> dict[str, Any] | None:
        found = [p for p in await pending_of(handle) if p.get("kind") == "input" and p["tool"] == tool]
        return found[0] if found else None

    return await wait_for(check, what=f"an input request of {tool}")


async def test_a_token_echoed_into_schemas_questions_and_ids_is_scrubbed_and_answers_still_work(
    client: Client, tmp_path: Path
) -> None:
    log = tmp_path / "leaky.jsonl"
    script = {
        "host": [
            {"tool_call": {"name": "lookup", "arguments": {"q": "public"}}},
            {"tool_call": {"name": "choose", "arguments": {}}},
            {"tool_call": {"name": "visit", "arguments": {}}},
            {"message": "Done."},
        ]
    }
    async with leaky_http(log) as url:
        servers = f"""
        [servers.leaky]
        transport = "http"
        url = "{url}"
        headers = {{ Authorization = "Bearer ${{LEAKY_TOKEN}}" }}
        """
        project = make_project(tmp_path, agents={"host": AGENT}, script=script, servers=servers)
        project.environ["LEAKY_TOKEN"] = SECRET
        async with airlock_worker(client, project) as activities:
            spy = record_model(activities)
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="host", input="Look it up.", requester="carol"),
                id=workflow_id("leaky"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            seen: list[str] = []

            # The gated read: its approvers see the tool's schema, scrubbed.
            [pending] = await wait_pending(handle)
            details = await handle.query("call_details", pending["call_id"], result_type=dict)
            schema = json.dumps(details["input_schema"])
            assert REDACTED in schema and "public" in schema
            seen += [json.dumps(await pending_of(handle)), json.dumps(details)]
            await handle.signal("approve", decision(pending, "alice"))

            # A form: message, schema (title, description, enum, default) scrubbed; the answer counts.
            asked = await wait_input(handle, "choose")
            question = asked["question"]
            assert REDACTED in question["message"]
            colour = question["requested_schema"]["properties"]["colour"]
            assert colour["enum"] == ["blue", REDACTED] and colour["default"] == REDACTED
            seen += [json.dumps(await pending_of(handle))]
            seen += [json.dumps(await handle.query("call_details", asked["call_id"], result_type=dict))]
            await handle.execute_update(
                "answer",
                {
                    "call_id": asked["call_id"],
                    "approver": "alice",
                    "question_sha256": question["question_sha256"],
                    "action": "accept",
                    "content": {"colour": "blue"},
                },
                result_type=dict,
            )

            # A URL request: its URL and id scrubbed; accepting it still reaches the server.
            asked = await wait_input(handle, "visit")
            question = asked["question"]
            assert question["url"] == f"https://connect.example/start?state={REDACTED}"
            assert question["elicitation_id"] == f"id-{REDACTED}"
            seen += [json.dumps(await pending_of(handle))]
            await handle.execute_update(
                "answer",
                {
                    "call_id": asked["call_id"],
                    "approver": "alice",
                    "question_sha256": question["question_sha256"],
                    "action": "accept",
                },
                result_type=dict,
            )

            result = await handle.result()
            assert result.status == "completed"
            outputs = spy.tool_outputs()
            assert outputs[0] == "found public"
            assert "blue" in outputs[1] and outputs[2] == "visited"
            # The first send was told cancel; the second carried the person's answer to the server's own question.
            chosen = [
                r for line in server_log(log) if line["tool"] == "choose" for r in (line["responses"] or {}).values()
            ]
            assert [r["action"] for r in chosen] == ["cancel", "accept"] and chosen[1]["content"] == {"colour": "blue"}

            history = await history_text(handle)
            model_sent = json.dumps([call.model_dump(mode="json") for call in spy.calls])
            audit = json.dumps(await handle.query("audit", result_type=list))
            for where, text in {
                "history": history,
                "model": model_sent,
                "audit": audit,
                "queries": "".join(seen),
            }.items():
                assert SECRET not in text, where
            assert REDACTED in history
            assert_no_task_failures(await handle.fetch_history())
            await assert_replays(handle)


async def test_a_stdio_servers_env_secret_echoed_in_a_result_is_scrubbed(client: Client, tmp_path: Path) -> None:
    servers = """
    [servers.leaky]
    transport = "stdio"
    command = "python"
    args = ["-m", "tests.support.leaky_mcp"]
    env = ["GH_TOKEN"]
    trust = "trusted"
    """
    script = {"host": [{"tool_call": {"name": "whoami", "arguments": {}}}, {"message": "Done."}]}
    project = make_project(tmp_path, agents={"host": AGENT}, script=script, servers=servers)
    project.environ["GH_TOKEN"] = SECRET
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="host", input="Who are you?", requester="carol"),
            id=workflow_id("leaky-stdio"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        assert (await handle.result()).status == "completed"
        assert spy.tool_outputs() == [f"my secret is {REDACTED}"]
        history = await history_text(handle)
        assert SECRET not in history and SECRET not in json.dumps([c.model_dump(mode="json") for c in spy.calls])
        await assert_replays(handle)
