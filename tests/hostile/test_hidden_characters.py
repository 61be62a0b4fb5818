"""A model that hides text in a call's arguments: the webhook notice and `airlock show` say so, visibly.

The model reads a right-to-left override and Unicode tag characters (invisible ASCII); a person
reading the notice in a chat relay, or the call in a terminal, would otherwise see a different
ticket id than the one they approve. The inbox's side is tested in tests/console/test_visible_html.py
(rendering) and tests/console/inbox/ (the browser).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from console.render import HIDDEN_WARNING
from tests.support.airlock_cli import address_of, airlock
from tests.support.conditions import wait_for
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from tests.support.webhook import Webhook
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration

# The comment reads "refund approved" to a person; the model also reads an instruction in tag characters.
HIDDEN = "refund approved\u202e" + "".join(chr(0xE0000 + ord(c)) for c in "T-9")
COMMENT = {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": HIDDEN}}
SCRIPT = {"support": [{"tool_call": COMMENT}, {"message": "Done."}]}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(failures=0)
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(5)


async def test_a_call_with_hidden_characters_is_announced_and_shown_visibly(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path, webhook: Webhook
) -> None:
    project = make_project(tmp_path, script=SCRIPT, approval_webhook_url=webhook.url)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1", requester="carol"),
            id=workflow_id("hidden"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        try:
            await wait_pending(handle)

            async def delivered() -> bool:
                return bool(webhook.received)

            await wait_for(delivered, what="the webhook to get the notice")
            [notice] = webhook.received
            assert notice["hidden_characters"] is True
            assert "invisible or direction-changing" in notice["text"]
            assert "\\u202e" in notice["text"] and "\\U000e0054" in notice["text"]
            assert "\u202e" not in notice["text"]
            assert notice["pending"]["arguments"] == COMMENT["arguments"]  # the exact arguments, for a relay

            env = {"AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env)}
            shown = await airlock("show", handle.id, home=tmp_path, env=env)
            assert shown.code == 0, shown.describe()
            assert HIDDEN_WARNING in shown.out
            assert "\\u202e" in shown.out and "\u202e" not in shown.out
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test over")
