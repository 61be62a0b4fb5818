"""The approval inbox in a real browser: Debian's chromium driven by playwright, against the real
stack (Temporal dev server, an Airlock worker, the tickets MCP server over stdio, signed decisions).

Screenshots go to tests/artifacts/inbox/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from console.inbox.auth import Person
from mcp_servers.tickets.store import TicketStore, count_writes
from tests.support import browser
from tests.support.browser import CHROMIUM, HEADER, Stack, chromium, page_as, row, shot
from tests.support.runs import pending_of, wait_pending, workflow_id

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}
PIPELINE = """
name = "fix"
[[steps]]
name = "fix"
agent = "support"
"""
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium)")


def inbox_stack(client: Client, tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Stack]:
    """The worker running SCRIPT (and the `fix` pipeline), with the inbox signing for alice, bob and mallory."""
    return browser.inbox_stack(client, tmp_path, SCRIPT, pipelines={"fix": PIPELINE})


async def start_support(client: Client, stack: Stack, prefix: str) -> Any:
    """A support run that waits to close T-1; carol requested it."""
    return await client.start_workflow(
        "AgentWorkflow",
        {"agent": "support", "input": "Close T-1, it is fixed.", "requester": "carol"},
        id=workflow_id(prefix),
        task_queue=stack.project.settings.task_queue,
    )


async def test_approve_with_an_edit_and_reject_in_the_browser(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with inbox_stack(client, tmp_path) as stack, chromium() as browser:
        first, second = await start_support(client, stack, "inbox-a"), await start_support(client, stack, "inbox-b")
        started = [first.id, second.id]
        try:
            await wait_pending(first)
            [rejected_call] = await wait_pending(second)
            page = await page_as(browser, "alice")
            await page.goto(stack.url + "/")
            await expect(page.locator(".dev-banner")).to_have_count(0)  # a real identity: no dev banner
            await expect(row(page, first.id)).to_be_visible()
            await expect(row(page, second.id)).to_be_visible()

            # A pipeline started after the page opened appears without a reload (the list polls).
            pipeline_id = workflow_id("inbox-pipeline")
            await client.start_workflow(
                "PipelineWorkflow",
                {"pipeline": "fix", "input": "Close T-1.", "requester": "carol"},
                id=pipeline_id,
                task_queue=stack.project.settings.task_queue,
            )
            child_id = f"{pipeline_id}/fix"
            started += [pipeline_id, child_id]
            await expect(row(page, child_id)).to_be_visible()
            for run_id in (first.id, second.id, child_id):
                cells = row(page, run_id).locator("td")
                await expect(cells.nth(0)).to_have_text("support")
                await expect(cells.nth(1)).to_have_text("tickets.close_ticket")
                await expect(cells.nth(2)).to_contain_text('"ticket_id": "T-1"')
                await expect(cells.nth(3)).to_have_text("carol (claimed)")  # typed by whoever started the run
                await expect(cells.nth(8)).to_have_text("yours")
            await shot(page, "01-inbox-three-waiting")
            dark = await page_as(browser, "alice", dark=True)
            await dark.goto(stack.url + "/")
            await expect(row(dark, child_id)).to_be_visible()
            await shot(dark, "02-inbox-dark")

            # Approve the first run's call with an edit: the page validates it and shows the diff first.
            await row(page, first.id).locator("a.open").click()
            await expect(page.locator("#arguments")).to_contain_text('"ticket_id"')
            await expect(page.locator(".conversation")).to_contain_text("Close T-1, it is fixed.")
            await expect(page.locator(".description")).to_contain_text("Close a ticket")
            await page.locator("form.edit summary").click()
            editor = page.locator("#edit-arguments")
            await editor.fill('{"ticket_id": "T-1", "resolution": "no such resolution"}')
            await expect(page.locator("#edit-check")).to_contain_text("not one of")
            await page.locator("#preview").click()
            await expect(page.locator("#message")).to_contain_text("does not match the tool's schema")
            await page.locator("#edit-arguments").fill(json.dumps({"ticket_id": "T-1", "resolution": "duplicate"}))
            await expect(page.locator("#edit-check")).to_have_text("Matches the schema.")
            await page.locator("#preview").click()
            await expect(page.locator("#diff .add")).to_contain_text('"resolution": "duplicate"')
            await expect(page.locator("#diff")).to_contain_text('"ticket_id": "T-1"')  # context, unchanged
            await expect(page.locator("#diff .del")).to_have_count(0)
            await shot(page, "03-call-edit-diff")
            await page.locator("#approve-edit").click()
            await expect(page.locator("#message")).to_contain_text("was recorded")
            await expect(page.locator("table.audit")).to_contain_text("signed:inbox/")
            await shot(page, "04-run-audit-after-edit")

            # Reject the second run's call with a reason.
            await page.goto(stack.url + "/")
            await row(page, second.id).locator("a.open").click()
            await page.locator("#reject-reason").fill("T-1 still fails in the EU region")
            await page.locator("#reject").click()
            await expect(page.locator("#message")).to_contain_text("was recorded")
            await expect(row(page, first.id)).to_have_count(0)

            # The decided calls leave the inbox by themselves; the child's call still waits.
            await page.goto(stack.url + "/")
            await expect(row(page, child_id)).to_be_visible()
            await expect(row(page, first.id)).to_have_count(0)
            await expect(row(page, second.id)).to_have_count(0)
            await shot(page, "05-inbox-after-decisions")

            first_result, second_result = await first.result(), await second.result()
            # Other tests' finished runs (their workers gone) are skipped after a short query timeout.
            await page.goto(stack.url + "/audit?decided_by=alice&tool=close_ticket", timeout=60_000)
            await expect(page.locator("table.audit")).to_contain_text(first.id)
            await expect(page.locator("table.audit")).to_contain_text(second.id)
            await shot(page, "06-audit-search")
            async with httpx.AsyncClient(base_url=stack.url, headers={HEADER: "alice"}, timeout=60) as http:
                exported = (await http.get("/audit", params={"decided_by": "alice", "format": "json"})).json()
                csv_text = (await http.get("/audit", params={"decided_by": "alice", "format": "csv"})).text
        finally:
            for run_id in started:
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(run_id).terminate("test over")
    [approved] = first_result["approvals"]
    assert (approved["decision"], approved["decided_by"], approved["outcome"]) == ("approved", "alice", "ok")
    assert approved["arguments"] == {"ticket_id": "T-1", "resolution": "duplicate"}
    assert approved["identity"].startswith("signed:inbox/")
    [refused] = second_result["approvals"]
    assert (refused["decision"], refused["reason"]) == ("rejected", "T-1 still fails in the EU region")
    assert refused["call_id"] == rejected_call["call_id"]
    # Exactly one write reached the MCP server, with the edited arguments.
    assert count_writes(stack.project.tickets_db) == 1
    assert TicketStore(stack.project.tickets_db).get("T-1")["resolution"] == "duplicate"
    events = {(e["workflow_id"], e["event"]) for e in exported}
    assert {(first.id, "approved"), (second.id, "rejected"), (first.id, "outcome")} <= events
    assert csv_text.splitlines()[0].startswith("workflow_id,at,event,call_id")


async def test_no_identity_a_cross_site_post_and_a_stranger_change_nothing(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with inbox_stack(client, tmp_path) as stack, chromium() as browser:
        handle = await start_support(client, stack, "inbox-refused")
        try:
            [pending] = await wait_pending(handle)
            form = {
                "wf": handle.id,
                "call": pending["call_id"],
                "sha256": pending["arguments_sha256"],
                "action": "approve",
                "reason": "",
            }
            alice_csrf = stack.gatekeeper.csrf_token(Person("alice"))

            # No identity header: nothing is shown, nothing is decided.
            anonymous = await (await browser.new_context()).new_page()
            response = await anonymous.goto(stack.url + "/")
            assert response is not None and response.status == 401
            await expect(anonymous.locator("#message")).to_contain_text("no single x-forwarded-user header")
            assert "Content-Security-Policy" in response.headers or "content-security-policy" in response.headers
            await shot(anonymous, "07-no-identity")

            # A stranger sees the call but not as decidable, and a forged POST in their name is refused.
            mallory = await page_as(browser, "mallory")
            await mallory.goto(stack.url + "/")
            await expect(row(mallory, handle.id).locator("td").nth(8)).to_have_text("view only")
            await mallory.goto(stack.url + "/?mine=1")
            await expect(row(mallory, handle.id)).to_have_count(0)
            await mallory.goto(f"{stack.url}/call?wf={handle.id}&call={pending['call_id']}")
            await expect(mallory.locator("#not-yours")).to_contain_text("its approvers are alice, bob")
            await expect(mallory.locator("#approve")).to_have_count(0)
            await shot(mallory, "08-stranger-view-only")

            async with httpx.AsyncClient(base_url=stack.url) as http:
                no_header = await http.post("/decide", data={**form, "csrf": alice_csrf}, headers={"Origin": stack.url})
                cross_site = await http.post(
                    "/decide",
                    data={**form, "csrf": alice_csrf},
                    headers={HEADER: "alice", "Origin": "http://evil.example"},
                )
                no_csrf = await http.post("/decide", data=form, headers={HEADER: "alice", "Origin": stack.url})
                wrong_host = await http.get("/", headers={HEADER: "alice", "Host": "evil.example"})
                stranger = await http.post(
                    "/decide",
                    data={**form, "csrf": stack.gatekeeper.csrf_token(Person("mallory"))},
                    headers={HEADER: "mallory", "Origin": stack.url},
                )
            still = await pending_of(handle)
            audit = await handle.query("audit", result_type=list)
            # Then alice's own decision from the page still goes through.
            page = await page_as(browser, "alice")
            await page.goto(f"{stack.url}/call?wf={handle.id}&call={pending['call_id']}")
            await page.locator("#approve").click()
            await expect(page.locator("#message")).to_contain_text("was recorded")
            result = await handle.result()
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")
    assert no_header.status_code == 401
    assert cross_site.status_code == 403 and "cross-site" in cross_site.text
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    assert wrong_host.status_code == 403
    assert stranger.status_code == 403 and "mallory may not decide this call" in stranger.text
    assert still == [pending]
    assert [e["event"] for e in audit] == ["requested"]
    [record] = result["approvals"]
    assert (record["decision"], record["decided_by"]) == ("approved", "alice")
    assert count_writes(stack.project.tickets_db, "close_ticket") == 1
