"""A hostile authorization server cannot choose what the worker scrubs.

The worker scrubs the OAuth tokens it obtains, in case a server echoes one. An authorization
server that issues the token "MALWARE_DETECTED" (tests/support/issuer_mcp.py, a real HTTP MCP
server with its own authorization server) would, if every obtained token were scrubbed, make
that text read `[redacted]` in every other server's results on the worker. Only a value that
looks like a random secret is learned; a real (random) token still is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client

from runtime.redaction import REDACTED, Redactor, plausible_secret
from tests.support.histories import assert_replays, history_text
from tests.support.leaky_mcp import SCAN_RESULT
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from tests.support.tickets_http import http_server_process
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # starts MCP servers

READY = re.compile(r"issuer MCP server listening on (http://\S+)")
AGENT = """
name = "reader"
instructions = "You read."
mcp_servers = ["wiki", "leaky"]

[tools]
"*" = "auto"
"""


@asynccontextmanager
async def issuer_server(events: Path, *args: str) -> AsyncIterator[str]:
    """The OAuth MCP server with its authorization server; yields its MCP URL."""
    env = {**os.environ, "ISSUER_EVENTS": str(events)}
    async with http_server_process(["-m", "tests.support.issuer_mcp", *args], env, READY) as (url, _, _):
        yield url


def issued(events: Path) -> list[str]:
    """Every access token the authorization server issued."""
    lines = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    return [line["issued"] for line in lines if "issued" in line]


@pytest.mark.parametrize("chosen", ["MALWARE_DETECTED", None])
async def test_an_issued_token_is_scrubbed_only_when_it_looks_like_a_secret(
    client: Client, tmp_path: Path, chosen: str | None
) -> None:
    events = tmp_path / "issuer.jsonl"
    async with issuer_server(events, *(["--token", chosen] if chosen else [])) as url:
        origin = url.removesuffix("/mcp")
        servers = f"""
        [servers.wiki]
        transport = "http"
        url = "{url}"
        [servers.wiki.oauth]
        client_id = "airlock"
        client_secret = "${{WIKI_SECRET}}"
        issuer = "{origin}"

        [servers.leaky]
        transport = "stdio"
        command = "python"
        args = ["-m", "tests.support.leaky_mcp"]
        """
        script = {
            "reader": [
                {"tool_call": {"name": "wiki_page", "arguments": {"q": "home"}}},
                {"tool_call": {"name": "scan", "arguments": {}}},
                {"message": "Done."},
            ]
        }
        project = make_project(tmp_path, agents={"reader": AGENT}, script=script, servers=servers)
        project.environ.update({"WIKI_SECRET": "wiki-client-secret-5e1f", "AIRLOCK_OAUTH_DIR": str(tmp_path / "oauth")})
        async with airlock_worker(client, project) as activities:
            spy = record_model(activities)
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="reader", input="Read and scan.", requester="carol"),
                id=workflow_id("token-choice"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            assert (await handle.result()).status == "completed"
            [token] = set(issued(events))
            assert spy.tool_outputs() == ["wiki page for home: it is documented", SCAN_RESULT]
            if chosen is not None:
                # The server's choice is not a secret the worker learns: other results keep the words.
                assert token == chosen and activities.redactor.scrub(SCAN_RESULT) == SCAN_RESULT
                assert "MALWARE_DETECTED" in await history_text(handle)
            else:
                # A real token is still learned, and scrubbed wherever it would be echoed.
                assert activities.redactor.scrub(f"Bearer {token}") == f"Bearer {REDACTED}"
            await assert_replays(handle)


@pytest.mark.parametrize(
    "value",
    [
        "MALWARE_DETECTED",
        "Malware_Detected_2024",
        "ThisIsMalwareDetected",
        "ACCESS_DENIED_BY_POLICY",
        "1234567890123456",
    ],
)
def test_words_and_numbers_are_never_learned(value: str) -> None:
    redactor = Redactor()
    redactor.learn(value)
    assert not plausible_secret(value) and redactor.scrub(value) == value


def test_configured_secrets_stay_scrubbed_whatever_they_look_like() -> None:
    assert Redactor(["MALWARE_DETECTED"]).scrub("x MALWARE_DETECTED") == f"x {REDACTED}"
