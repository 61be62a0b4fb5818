"""The inbox lists waiting calls a page at a time: the total, the page's rows (newest first), links
to the pages either side, and only the shown calls asked who may decide them."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from console.inbox import app as inbox_app
from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper
from console.inbox.runs import Runs
from console.inbox.server import bind, serve
from tests.support.browser import HEADER, SECRET
from tests.support.conditions import wait_for
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from workflows.payloads import AgentRequest

RUNS = 12
PER_PAGE = 5


def closer(name: str) -> str:
    """An agent whose close_ticket waits for alice."""
    return f"""
name = "{name}"
instructions = "Close the ticket."
mcp_servers = ["tickets"]
[tools]
close_ticket = "approve"
[approval]
approvers = ["alice"]
"""


class CountingRuns(Runs):
    """The inbox's Temporal side, counting the `call_details` queries it makes."""

    asked: int = 0

    async def details(self, workflow_id: str, call_id: str) -> Any:
        """Count, then ask."""
        self.asked += 1
        return await super().details(workflow_id, call_id)


def shown(html: str) -> list[str]:
    """The workflow ids of the rows on a page, in order."""
    return re.findall(r'data-workflow="([^"]+)"', html)


async def test_the_inbox_lists_waiting_calls_a_page_at_a_time(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_app, "PER_PAGE", PER_PAGE)
    agent = f"paged{uuid.uuid4().hex[:8]}"
    script = {
        agent: [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
            {"message": "Closed."},
        ]
    }
    project = make_project(
        tmp_path, agents={agent: closer(agent)}, script=script, inbox_port=0, inbox_trusted_proxies=["127.0.0.1"]
    )
    sock = bind(project.settings)
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    gatekeeper = Gatekeeper(identity_header=HEADER, trusted_proxies=["127.0.0.1"], allowed_hosts=[host], secret=SECRET)
    runs = CountingRuns(client, None)
    stop = asyncio.Event()
    async with airlock_worker(client, project):
        serving = asyncio.create_task(serve(build_app(runs, gatekeeper), project.settings, stop, sock))
        handles = []
        try:
            for _ in range(RUNS):
                handle = await client.start_workflow(
                    "AgentWorkflow",
                    AgentRequest(agent=agent, input="Close T-1.", requester="carol"),
                    id=workflow_id("paged"),
                    task_queue=project.settings.task_queue,
                )
                handles.append(handle)
                await wait_pending(handle)  # one at a time: each request is newer than the last
            query = f'AirlockState="awaiting_approval" AND ExecutionStatus="Running" AND AirlockAgent="{agent}"'

            async def all_listed() -> bool:
                return (await client.count_workflows(query)).count >= RUNS

            await wait_for(all_listed, what="every run listed as waiting")
            newest_first = [h.id for h in reversed(handles)]
            async with httpx.AsyncClient(base_url=f"http://{host}", headers={HEADER: "alice"}) as http:
                first = await http.get("/", params={"agent": agent})
                assert first.status_code == 200, first.text
                assert shown(first.text) == newest_first[:PER_PAGE]
                assert f"{RUNS} waiting; page 1 of 3" in first.text
                assert runs.asked == PER_PAGE, "only the shown calls are asked who may decide them"
                assert f'href="/?agent={agent}&amp;page=2"' in first.text
                last = await http.get("/calls", params={"agent": agent, "page": "3"})
                assert shown(last.text) == newest_first[2 * PER_PAGE :]
                assert f'href="/?agent={agent}&amp;page=2"' in last.text and 'rel="next"' not in last.text
                beyond = await http.get("/calls", params={"agent": agent, "page": "99"})
                assert shown(beyond.text) == newest_first[2 * PER_PAGE :], "past the end: the last page"
                for junk in ("0", "-1", "²", "1" * 5000):
                    page = await http.get("/calls", params={"agent": agent, "page": junk})
                    assert page.status_code == 200 and shown(page.text) == newest_first[:PER_PAGE], junk
        finally:
            stop.set()
            await serving
            await asyncio.gather(*(h.terminate("test over") for h in handles))
