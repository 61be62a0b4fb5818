"""A model that hides text in a call's arguments: the inbox, in a real browser, marks every hidden character.

The comment reads "refund approved" to a person; the model also reads an instruction written in
Unicode tag characters after a right-to-left override. The page says the call holds such
characters, marks each as its escape (named in its title), and keeps the decision working.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.support.browser import chromium, inbox_stack, page_as, row, shot
from tests.support.runs import wait_pending, workflow_id

TAGS = "".join(chr(0xE0000 + ord(c)) for c in "T-9")
HIDDEN = "refund approved\u202e" + TAGS
COMMENT = {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": HIDDEN}}
SCRIPT = {"support": [{"tool_call": COMMENT}, {"message": "Done."}]}


async def test_the_inbox_marks_hidden_characters_and_says_so(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with inbox_stack(client, tmp_path, SCRIPT) as stack, chromium() as browser:
        handle = await client.start_workflow(
            "AgentWorkflow",
            {"agent": "support", "input": "Comment on T-1.", "requester": "carol"},
            id=workflow_id("inbox-hidden"),
            task_queue=stack.project.settings.task_queue,
        )
        try:
            await wait_pending(handle)
            page = await page_as(browser, "alice")
            await page.goto(stack.url + "/")
            args_cell = row(page, handle.id).locator("code.args")
            await expect(args_cell).to_contain_text("\\u202e")
            await expect(args_cell.locator("mark.hidden-char")).to_have_count(1 + len(TAGS))

            await row(page, handle.id).locator("a.open").click()
            await expect(page.locator("#hidden-characters")).to_contain_text("invisible or direction-changing")
            marks = page.locator("#arguments mark.hidden-char")
            await expect(marks).to_have_count(1 + len(TAGS))
            await expect(marks.first).to_have_text("\\u202e")
            await expect(marks.first).to_have_attribute("title", "RIGHT-TO-LEFT OVERRIDE")
            await expect(marks.nth(1)).to_have_attribute("title", "TAG LATIN CAPITAL LETTER T")
            shown = await page.locator("#arguments").inner_text()
            assert "\u202e" not in shown and all(ch not in shown for ch in TAGS)
            await shot(page, "20-call-hidden-characters")

            # The decision still works on the call as the model wrote it.
            await page.locator("#reject-reason").fill("hidden text in the comment")
            await page.locator("#reject").click()
            await expect(page.locator("#message")).to_contain_text("was recorded")
            result = await handle.result()
            assert result["approvals"][0]["decision"] == "rejected"
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test over")
