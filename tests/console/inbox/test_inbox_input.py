"""Answering a server's input request from the inbox, in Debian's chromium (playwright).

The real stack: Temporal dev server, an Airlock worker, the asking MCP server over stdio, the
inbox signing as its service for the person behind the proxy header. A wrong value is refused
and changes nothing; the form's answer reaches the server and the run completes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect
from temporalio.client import Client

from console import signing
from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper
from console.inbox.runs import Runs
from console.inbox.server import bind, serve
from tests.support.asking import host_agent, project_for, server_log, wait_input
from tests.support.browser import CHROMIUM, HEADER, SECRET, chromium, page_as, row, shot, write_approvers
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker
from tests.support.runs import pending_of, workflow_id
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)")


@contextlib.asynccontextmanager
async def served(app: object, settings: object, sock: object) -> AsyncIterator[None]:
    """Serve the inbox until the block ends."""
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, settings, stop, sock))  # type: ignore[arg-type]
    try:
        yield
    finally:
        stop.set()
        await serving


async def test_an_input_request_is_answered_from_the_inbox(client: Client, tmp_path: Path) -> None:
    approvers, inbox_key = write_approvers(tmp_path)
    project = project_for(
        tmp_path,
        {"host": [{"tool_call": {"name": "book_room", "arguments": {"room": "Q"}}}, {"message": "Done."}]},
        agents={"host": host_agent(approval='approvers = ["alice"]')},
        approvers_file=approvers,
        inbox_port=0,
        inbox_trusted_proxies=["127.0.0.1"],
        inbox_key_file=inbox_key,
    )
    sock = bind(project.settings)
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    gatekeeper = Gatekeeper(identity_header=HEADER, trusted_proxies=["127.0.0.1"], allowed_hosts=[host], secret=SECRET)
    app = build_app(Runs(client, signing.load_private_key(inbox_key)), gatekeeper)
    async with airlock_worker(client, project), served(app, project.settings, sock), chromium() as browser:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="host", input="Book room Q.", requester="carol"),
            id=workflow_id("inbox-input"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        try:
            await wait_input(handle)
            page = await page_as(browser, "alice")
            await page.goto(f"http://{host}/")
            listed = row(page, handle.id)
            await expect(listed.locator("td").nth(2)).to_contain_text("asks: How many people for room Q?")
            await expect(listed.locator("td").nth(6)).to_have_text("answer")
            await listed.locator("a.open").click()
            await expect(page.locator("#question-message")).to_have_text("How many people for room Q?")
            size = page.locator('[data-field="size"] input')
            await size.fill("500")  # the schema's maximum is 50: the run refuses it
            await page.locator('[data-field="note"] input').fill("projector please")
            await page.locator("#accept").click()
            await expect(page.locator("#message")).to_contain_text("Refused:")
            await expect(page.locator("#message")).to_contain_text("size")
            assert [p["kind"] for p in await pending_of(handle)] == ["input"]
            await shot(page, "07-input-refused")
            await page.locator('[data-field="size"] input').fill("6")
            await page.locator('[data-field="note"] input').fill("projector please")
            await page.locator("#accept").click()
            await expect(page.locator("table.audit")).to_contain_text("answered")
            await expect(page.locator("table.audit")).to_contain_text("signed:inbox/")
            await shot(page, "08-input-answered")
            result = await handle.result()
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")
    assert result.status == "completed"
    assert [(line["action"], line["content"]) for line in server_log(project)] == [
        ("cancel", None),
        ("accept", {"size": 6, "note": "projector please"}),
    ]
    await assert_replays(handle)
