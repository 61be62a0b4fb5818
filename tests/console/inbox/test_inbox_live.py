"""The inbox updates from runs' event streams: server-sent events to the browser instead of polling.

Real stack: Temporal dev server, an Airlock worker, the tickets MCP server over stdio, the inbox
served on a loopback port, and Debian's chromium driven by playwright for the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
from playwright.async_api import expect
from temporalio.client import Client

from tests.support.approvals import CLOSE_SCRIPT, start
from tests.support.browser import HEADER, Stack, chromium, inbox_stack, page_as, row, shot
from tests.support.runs import decision, wait_pending

RUN_DEADLINE_S = 60.0


def live_stack(client: Client, tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Stack]:
    """The worker running CLOSE_SCRIPT, and the inbox (decisions asserted: no approvers file)."""
    return inbox_stack(client, tmp_path, CLOSE_SCRIPT, signed=False)


async def sse_events(http: httpx.AsyncClient, path: str, **headers: str) -> list[tuple[str, str, str | None]]:
    """Every (event, data, id) of a server-sent event stream, until its `end`."""
    found: list[tuple[str, str, str | None]] = []
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields:
                found.append((fields.get("event", "message"), fields.get("data", ""), fields.get("id")))
                if fields.get("event") == "end":
                    return found
                fields = {}
    return found


async def test_a_run_s_events_over_http_and_server_sent_events_resume_from_an_offset(
    client: Client, tmp_path: Path
) -> None:
    async with live_stack(client, tmp_path) as stack:
        handle = await start(client, stack.project, "inbox-live-http")
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))
        await handle.result()
        async with httpx.AsyncClient(base_url=stack.url, headers={HEADER: "alice"}, timeout=RUN_DEADLINE_S) as http:
            whole = (await http.get("/events.json", params={"wf": handle.id})).json()
            later = (await http.get("/events.json", params={"wf": handle.id, "after": 5})).json()
            # Two readers at once share the inbox's one subscription to the run; a browser that
            # reconnects sends the id of the last event it had, and gets the ones after it.
            streamed, resumed = await asyncio.gather(
                sse_events(http, f"/events?wf={handle.id}"),
                sse_events(http, f"/events?wf={handle.id}", **{"Last-Event-ID": "5"}),
            )
    kinds = [e["kind"] for e in whole["events"]]
    assert kinds[0] == "state" and kinds[-1] == "completed" and "approval_decided" in kinds
    assert [e["seq"] for e in whole["events"]] == list(range(len(kinds)))
    assert whole["next_seq"] == len(kinds) and not whole["truncated"]
    assert later["events"] == whole["events"][5:]
    runs = [(json.loads(data), event_id) for event, data, event_id in streamed if event == "run"]
    assert [e for e, _ in runs] == whole["events"]
    assert [event_id for _, event_id in runs] == [str(e["seq"]) for e in whole["events"]]
    assert streamed[-1][0] == "end"
    assert [json.loads(data) for event, data, _ in resumed if event == "run"] == whole["events"][6:]


async def test_the_run_page_follows_the_run_without_a_reload(client: Client, tmp_path: Path) -> None:
    async with live_stack(client, tmp_path) as stack, chromium() as browser:
        handle = await start(client, stack.project, "inbox-live-run")
        try:
            [pending] = await wait_pending(handle)
            page = await page_as(browser, "alice")
            await page.goto(f"{stack.url}/run?wf={handle.id}")
            await expect(page.locator("#state")).to_have_text("awaiting_approval")
            await expect(page.locator("#events li.approval_requested")).to_contain_text("tickets.close_ticket")
            await page.evaluate("window.notReloaded = true")
            await handle.signal("approve", decision(pending, "alice"))
            await expect(page.locator("#events li.approval_decided")).to_contain_text("approved by alice")
            await expect(page.locator("#events li.completed")).to_contain_text("Done.")
            await expect(page.locator("#state")).to_have_text("completed")
            await expect(page.locator("#events")).to_have_attribute("data-ended", "true")
            assert await page.evaluate("window.notReloaded === true"), "the page was reloaded"
            seqs = await page.locator("#events li").evaluate_all("items => items.map(i => Number(i.dataset.seq))")
            assert seqs == list(range(len(seqs)))
            await shot(page, "10-run-live-events")
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")


async def test_the_inbox_list_updates_from_server_sent_events(client: Client, tmp_path: Path) -> None:
    async with live_stack(client, tmp_path) as stack, chromium() as browser:
        page = await page_as(browser, "alice")
        await page.goto(stack.url + "/")
        calls = page.locator("#calls")
        await expect(calls).to_have_attribute("data-live", "sse")
        await page.evaluate("window.notReloaded = true")
        handle = await start(client, stack.project, "inbox-live-list")
        try:
            [pending] = await wait_pending(handle)
            await expect(row(page, handle.id)).to_be_visible()
            await expect(calls).to_have_attribute("data-refreshed-by", "sse")
            await handle.signal("approve", decision(pending, "alice"))
            await expect(row(page, handle.id)).to_have_count(0)
            await handle.result()
            assert await page.evaluate("window.notReloaded === true"), "the page was reloaded"
            # Every refresh came from the event stream: the page did not fall back to polling.
            await expect(calls).to_have_attribute("data-refreshed-by", "sse")
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")
