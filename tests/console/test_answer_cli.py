"""`airlock answer` over a real run whose MCP server asks over streamable HTTP: listed, signed, delivered.

Real Temporal, the asking MCP server as a loopback HTTP subprocess, the installed `airlock`
console script, keys made with `airlock keygen` and an approvers file, so only signed answers count.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.airlock_cli import address_of, airlock
from tests.support.asking import host_agent, server_log, wait_input
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import pending_of, workflow_id
from tests.support.tickets_http import http_server_process
from workflows.commands import answer_command
from workflows.payloads import AgentRequest, AgentResult

READY = re.compile(r"asking MCP server listening on (http://[^\s\"]+)")


async def test_pending_show_and_a_signed_answer_over_http(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    entries = []
    for name in ("alice", "mallory"):
        made = await airlock("keygen", name, home=home)
        assert made.code == 0, made.describe()
        entries.append(made.out)
    approvers = tmp_path / "approvers.toml"
    approvers.write_text("".join(entries))
    log = tmp_path / "asking.jsonl"
    address = address_of(temporal_env)

    env = {**os.environ, "ASKING_LOG": str(log)}
    async with http_server_process(["-m", "tests.support.asking_mcp", "--http", "--port", "0"], env, READY) as (
        url,
        _pid,
        _lines,
    ):
        servers = f'[servers.asking]\ntransport = "http"\nurl = "{url}"\ntrust = "trusted"\n'
        project = make_project(
            tmp_path,
            agents={"host": host_agent(approval='approvers = ["alice"]')},
            servers=servers,
            script={"host": [{"tool_call": {"name": "book_room", "arguments": {"room": "B"}}}, {"message": "Done."}]},
            approvers_file=approvers,
        )
        project.environ["ASKING_LOG"] = str(log)
        async with airlock_worker(client, project):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="host", input="Book room B.", requester="carol"),
                id=workflow_id("answer-cli"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            pending = await wait_input(handle)
            sha = pending["question"]["question_sha256"]

            async def listed() -> list[dict[str, object]] | None:
                ran = await airlock("--address", address, "-o", "json", "pending", "--agent", "host", home=home)
                found = [c for c in ran.json() if c["workflow_id"] == handle.id]
                return found or None

            [listed_call] = await wait_for(listed, what="the input request in `airlock pending`")
            table = await airlock("--address", address, "pending", "--agent", "host", home=home)
            shown = await airlock("--address", address, "show", handle.id, home=home)
            wrong_type = await airlock(
                "--address",
                address,
                "answer",
                handle.id,
                pending["call_id"],
                '{"size": "lots"}',
                "--sha256",
                sha,
                "--as",
                "alice",
                home=home,
            )
            extra_key = await airlock(
                "--address",
                address,
                "answer",
                handle.id,
                pending["call_id"],
                '{"size": 2, "room": "C"}',
                "--sha256",
                sha,
                "--as",
                "alice",
                home=home,
            )
            not_allowed = await airlock(
                "--address",
                address,
                "answer",
                handle.id,
                pending["call_id"],
                '{"size": 2}',
                "--sha256",
                sha,
                "--as",
                "mallory",
                home=home,
            )
            stale = await airlock(
                "--address",
                address,
                "answer",
                handle.id,
                pending["call_id"],
                '{"size": 2}',
                "--sha256",
                "0" * 64,
                "--as",
                "alice",
                home=home,
            )
            unchanged = await pending_of(handle)
            answered = await airlock(
                "--address",
                address,
                "-o",
                "json",
                "answer",
                handle.id,
                pending["call_id"],
                '{"size": 2, "note": "window seat"}',
                "--sha256",
                sha,
                "--as",
                "alice",
                home=home,
            )
            result = await handle.result()
            await assert_replays(handle)

    assert listed_call["kind"] == "input" and listed_call["question"]["message"] == "How many people for room B?"
    assert listed_call["answer_command"] == answer_command(handle.id, pending["call_id"], sha)
    assert "approve_command" not in listed_call
    row = next(line for line in table.out.splitlines() if line.startswith(handle.id))
    assert "input: How many people for room B?" in row and row.split()[-1] == "answer"
    assert shown.code == 0, shown.describe()
    assert "How many people for room B?" in shown.out and sha in shown.out and '"size"' in shown.out
    for refused, why in (
        (wrong_type, "size"),
        (extra_key, "not a field of the form"),
        (not_allowed, "is not an approver"),
        (stale, "wrong question_sha256"),
    ):
        assert refused.code == 1 and "refused:" in refused.err and why in refused.err, refused.describe()
    assert [p["call_id"] for p in unchanged] == [pending["call_id"]]
    record = answered.json()
    assert (record["event"], record["actor"], record["action"]) == ("answered", "alice", "accept")
    assert record["identity"].startswith("signed:alice/") and answered.err == ""
    assert result.status == "completed"
    received = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["action"], r["content"]) for r in received] == [
        ("cancel", None),
        ("accept", {"size": 2, "note": "window seat"}),
    ]
    assert server_log(project) == received
