"""The approval webhook: told about every pending approval and input request, retried, never in the run's way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.asking import answer, book, host_agent, project_for, start, wait_input
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.webhook import Webhook
from workflows import notices
from workflows.payloads import AgentRequest, AgentResult

SCRIPT = {
    "support": [
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-4"}}},
        {"message": "Closed T-4."},
    ]
}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(failures=2)
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(5)


async def test_webhook_gets_pending_approval_after_retries(client: Client, tmp_path: Path, webhook: Webhook) -> None:
    project = make_project(tmp_path, script=SCRIPT, approval_webhook_url=webhook.url)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-4", requester="carol"),
            id=workflow_id("hook"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)

        async def delivered() -> bool:
            return bool(webhook.received)

        await wait_for(delivered, what="the webhook to accept the notice")
        await handle.signal("approve", decision(pending, "bob"))
        result = await handle.result()
    assert webhook.attempts == 3, "two failed deliveries, then one that worked"
    [notice] = webhook.received
    assert notice["workflow_id"] == handle.id
    assert notice["pending"]["call_id"] == pending["call_id"]
    assert notice["pending"]["tool"] == "close_ticket"
    assert notice["approve_command"] == (
        f"airlock approve {handle.id} {pending['call_id']} --sha256 {pending['arguments_sha256']} --as '<you>'"
    )
    assert notice["reject_command"].startswith(f"airlock reject {handle.id} {pending['call_id']} --sha256 ")
    assert result.output == "Closed T-4."
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


async def test_unreachable_webhook_never_blocks_the_run(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT, approval_webhook_url="http://127.0.0.1:9/nothing-listens")
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-4", requester="carol"),
            id=workflow_id("nohook"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert result.output == "Closed T-4."
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


async def test_webhook_gets_an_input_request_with_the_command_that_answers_it(
    client: Client, tmp_path: Path, webhook: Webhook
) -> None:
    project = project_for(tmp_path, {"host": book()}, approval_webhook_url=webhook.url)
    async with airlock_worker(client, project):
        handle = await start(client, project)
        pending = await wait_input(handle)

        async def delivered() -> bool:
            return bool(webhook.received)

        await wait_for(delivered, what="the webhook to accept the notice")
        await handle.execute_update("answer", answer(pending, "alice", content={"size": 2}), result_type=dict)
        result = await handle.result()
    [notice] = webhook.received
    sha = pending["question"]["question_sha256"]
    assert notice["workflow_id"] == handle.id
    assert notice["pending"]["kind"] == "input" and notice["pending"]["call_id"] == pending["call_id"]
    assert notice["pending"]["question"]["message"] == "How many people for room A?"
    assert notice["answer_command"] == (
        f"airlock answer {handle.id} {pending['call_id']} '<json>' --sha256 {sha} --as '<you>'"
    )
    assert notice["approve_command"] == notice["reject_command"] == ""
    assert result.status == "completed"
    await assert_replays(handle)


async def test_a_run_that_asked_before_input_requests_were_announced_still_replays(
    client: Client, tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_for(tmp_path, {"host": book()}, approval_webhook_url=webhook.url)
    with monkeypatch.context() as earlier:
        # The release before: an input request sent no notice, so its history has none.
        earlier.setattr(notices, "announce_input", lambda *_args, **_kwargs: None)
        async with airlock_worker(client, project):
            handle = await start(client, project)
            pending = await wait_input(handle)
            await handle.execute_update("answer", answer(pending, "alice", content={"size": 2}), result_type=dict)
            result = await handle.result()
    assert result.status == "completed" and webhook.received == []
    # Today's code takes the old branch for it (`workflow.patched`): no new command, no divergence.
    await assert_replays(handle)


async def test_an_input_request_is_announced_again_when_it_escalates(
    client: Client, tmp_path: Path, webhook: Webhook
) -> None:
    approval = 'approvers = ["alice"]\nescalate_after = "1s"\nescalate_to = ["dave"]\ntimeout = "1h"'
    project = project_for(
        tmp_path, {"host": book()}, agents={"host": host_agent(approval=approval)}, approval_webhook_url=webhook.url
    )
    async with airlock_worker(client, project):
        handle = await start(client, project)
        pending = await wait_input(handle)

        async def both() -> bool:
            return len(webhook.received) == 2

        await wait_for(both, what="the notice and the escalation's")
        # dave was not an approver until the escalation: now his answer counts.
        await handle.execute_update("answer", answer(pending, "dave", content={"size": 4}), result_type=dict)
        result = await handle.result()
    # The webhook refuses its first two POSTs, so the two notices may land in either order.
    first, again = sorted(webhook.received, key=lambda notice: notice["escalated"])
    assert [first["escalated"], again["escalated"]] == [False, True]
    assert first["answer_command"] == again["answer_command"] != ""
    assert again["pending"]["call_id"] == pending["call_id"]
    assert result.status == "completed"
    await assert_replays(handle)
