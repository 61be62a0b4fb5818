"""MCP authorization through a real worker: discovery, client credentials and refresh against a
local authorization server, and no secret or token anywhere a person or a model can read.

The server is tests/support/oauth_mcp.py (authorization server and protected MCP server on one
loopback origin); it writes down every token it issues, so the test knows what to look for.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
from temporalio.client import Client, WorkflowHandle

from tests.support.histories import history_text
from tests.support.logs import worker_logs
from tests.support.oauth_mcp import READY
from tests.support.project import Project, make_project
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, workflow_id
from tests.support.tickets_http import http_server_process
from worker import build_activities, running_worker
from workflows.payloads import AgentRequest, AgentResult

SECRET = "wiki-client-secret-5f3a9c1e7b"
WIKI_AGENT = """
name = "reader"
instructions = "You read the wiki."
mcp_servers = ["wiki"]
"""
READY_LINE = re.compile(re.escape(READY) + r" (http://\S+)")


@contextlib.asynccontextmanager
async def oauth_server(events: Path, *flags: str) -> AsyncIterator[str]:
    """The test authorization + MCP server on loopback; yields the MCP URL."""
    env = {**os.environ, "OAUTH_CLIENT_ID": "airlock", "OAUTH_CLIENT_SECRET": SECRET, "OAUTH_EVENTS": str(events)}
    async with http_server_process(["-m", "tests.support.oauth_mcp", *flags], env, READY_LINE) as (url, _, _):
        yield url


def origin(url: str) -> str:
    """`http://host:port` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def wiki_project(
    tmp_path: Path,
    url: str,
    script: list[dict[str, Any]],
    *,
    oauth: bool = True,
    issuer: str | Literal["server"] | None = "server",
) -> Project:
    """A project whose agent reads an OAuth-protected wiki server.

    The credentials are pinned to `issuer` (by default the wiki's own authorization server).
    """
    pinned = origin(url) if issuer == "server" else issuer
    table = '[servers.wiki.oauth]\nclient_id = "airlock"\nclient_secret = "${WIKI_CLIENT_SECRET}"\n' if oauth else ""
    if oauth and pinned is not None:
        table += f'issuer = "{pinned}"\n'
    servers = f'[servers.wiki]\ntransport = "http"\nurl = "{url}"\ntrust = "trusted"\n{table}'
    project = make_project(tmp_path, agents={"reader": WIKI_AGENT}, script={"reader": script}, servers=servers)
    project.environ.update({"WIKI_CLIENT_SECRET": SECRET, "AIRLOCK_OAUTH_DIR": str(tmp_path / "oauth")})
    return project


def recorded(events: Path, kind: str) -> list[dict[str, Any]]:
    """The authorization server's event lines that have the field `kind`.

    `access_token`: the tokens it issued; `token_request`: the token requests it received.
    """
    lines = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    return [line for line in lines if kind in line]


async def start_reader(client: Client, project: Project, prompt: str, name: str) -> WorkflowHandle[Any, AgentResult]:
    """Start a run of the wiki reader, requested by carol."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="reader", input=prompt, requester="carol"),
        id=workflow_id(name),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def test_a_run_uses_an_oauth_server_and_no_secret_or_token_leaks(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = tmp_path / "events.jsonl"
    script = [
        {"tool_call": {"name": "lookup", "arguments": {"q": "deploys"}}},
        # Longer than the token's 2 s life: the next call needs a refreshed token.
        {"tool_call": {"name": "pause", "arguments": {"seconds": 2.5}}},
        {"tool_call": {"name": "whoami", "arguments": {}}},
        {"message": "read it"},
    ]
    async with oauth_server(events) as url:
        project = wiki_project(tmp_path, url, script)
        activities = build_activities(project.settings, environ=project.environ)
        recorder = record_model(activities)
        with worker_logs(activities.redactor, capsys) as logged:
            async with running_worker(client, project.settings, activities):
                handle = await start_reader(client, project, "deploys", "oauth")
                result = await handle.result()
            logs = logged()
    assert result.status == "completed" and result.tool_calls == 3
    tokens = recorded(events, "access_token")
    grants = [t["grant"] for t in tokens]
    assert grants[0] == "client_credentials" and "refresh_token" in grants, grants
    outputs = recorder.tool_outputs()
    assert "wiki page for deploys" in outputs[0]
    # The server echoed its bearer token into the result: the model saw it scrubbed.
    assert outputs[2].startswith("you called with Bearer [redacted]"), outputs[2]

    history = await history_text(handle)
    model_input = json.dumps([call.model_dump(mode="json") for call in recorder.calls])
    secrets = [SECRET, *(t["access_token"] for t in tokens), *(t["refresh_token"] for t in tokens)]
    for where, text in (("history", history), ("worker logs", logs), ("model input", model_input)):
        leaked = [value[:6] + "…" for value in secrets if value in text]
        assert leaked == [], f"{where} holds a secret or token: {leaked}"
    assert '"mcp_connected"' in logs  # the logs were captured at all
    token_file = tmp_path / "oauth" / "wiki.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


async def test_a_token_endpoint_that_echoes_the_secret_fails_the_run_without_it(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = tmp_path / "events.jsonl"
    async with oauth_server(events, "--echo-secret") as url:
        project = wiki_project(tmp_path, url, [{"message": "never"}])
        activities = build_activities(project.settings, environ=project.environ)
        with worker_logs(activities.redactor, capsys) as logged:
            async with running_worker(client, project.settings, activities):
                handle = await start_reader(client, project, "x", "oauth-echo")
                failure = await failure_of(handle)
            logs = logged()
    refusals = [json.loads(line) for line in events.read_text().splitlines() if "refused" in line]
    assert refusals, "the token endpoint was asked (and echoed the secret back)"
    assert failure.type == "ToolUnavailableError"
    assert "'wiki'" in failure.message
    for where, text in (("failure", failure.message), ("history", await history_text(handle)), ("logs", logs)):
        assert SECRET not in text, f"{where} holds the client secret"


async def test_a_server_naming_another_authorization_server_gets_no_credentials_sent_there(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A hostile MCP server's metadata sends clients to an authorization server its owner runs.
    rogue_events, events = tmp_path / "rogue.jsonl", tmp_path / "events.jsonl"
    outcomes = {}
    async with oauth_server(rogue_events) as rogue_url, oauth_server(events, "--advertise", origin(rogue_url)) as url:
        for pinned in (True, False):
            home = tmp_path / ("pinned" if pinned else "unpinned")
            project = wiki_project(home, url, [{"message": "never"}], issuer="server" if pinned else None)
            activities = build_activities(project.settings, environ=project.environ)
            with worker_logs(activities.redactor, capsys) as logged:
                async with running_worker(client, project.settings, activities):
                    handle = await start_reader(client, project, "x", "oauth-rogue")
                    failure = await failure_of(handle)
                outcomes[pinned] = (
                    failure,
                    recorded(rogue_events, "token_request"),
                    recorded(events, "token_request"),
                    logged(),
                )
    # Pinned to the wiki's own authorization server, the worker sends its secret nowhere: the
    # metadata names another server, so it stops before any token request, and says why.
    failure, asked, asked_wiki, logs = outcomes[True]
    assert asked == [] and asked_wiki == []
    assert failure.type == "ToolUnavailableError" and "'wiki'" in failure.message
    assert "issuer mismatch" in failure.message, failure.message
    assert '"mcp_oauth_issuer_unset"' not in logs
    # The premise: unpinned, the same metadata does send the secret there (and the worker says why).
    failure, asked, _, logs = outcomes[False]
    assert asked and {(request["client_id"], request["secret"]) for request in asked} == {("airlock", SECRET)}
    assert '"mcp_oauth_issuer_unset"' in logs


async def test_a_401_fails_the_run_naming_the_server_and_the_reason(client: Client, tmp_path: Path) -> None:
    async with oauth_server(tmp_path / "events.jsonl") as url:
        project = wiki_project(tmp_path, url, [{"message": "never"}], oauth=False)
        activities = build_activities(project.settings, environ=project.environ)
        async with running_worker(client, project.settings, activities):
            handle = await start_reader(client, project, "x", "oauth-401")
            failure = await failure_of(handle)
    assert failure.type == "ToolUnavailableError"
    assert "401 unauthorized from server 'wiki': no live token" in failure.message, failure.message
