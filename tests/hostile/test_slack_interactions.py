"""A click in Slack decides a call only when Slack signed it, once, for a linked person who may decide.

The inbox app serves `POST /slack/interactions` on a real socket; requests are real HTTP,
signed as Slack signs them (or not). The decision is signed as the `slack` service for the
person, so the run verifies it like any other and its audit names both. Every refused click
changes nothing in the run and is answered in Slack (the stand-in's `response_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from console.inbox import server
from console.slack import INTERACTIONS_PATH, Slack
from mcp_servers.tickets.store import count_writes
from runtime.devserver import free_port
from runtime.settings import Settings
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import Project, airlock_worker, make_project
from tests.support.runs import pending_of, wait_pending, workflow_id
from tests.support.slack_standin import (
    BOT_TOKEN,
    SIGNING_SECRET,
    StandIn,
    buttons,
    click,
    signed_request,
    slack_standin,
    texts,
    write_slack_files,
)
from workflows.payloads import AgentRequest, AgentResult

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}
DEADLINE_S = 40.0
# The agent's approvers are alice and bob; carol is linked but not an approver; the service may
# not vouch for bob; U0NOBODY is nobody's.
PEOPLE = {"alice": "U0ALICE", "bob": "U0BOB", "carol": "U0CAROL"}


def slack_project(tmp_path: Path, standin: StandIn) -> Project:
    files = write_slack_files(tmp_path, standin, people=PEOPLE, may_assert=["alice", "carol"])
    return make_project(
        tmp_path,
        script=SCRIPT,
        approvers_file=files.approvers,
        slack_file=files.slack_toml,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        inbox_trusted_proxies=["127.0.0.2"],
    )


@contextlib.asynccontextmanager
async def inbox(client: Client, settings: Settings) -> AsyncIterator[tuple[str, Slack]]:
    """The inbox app (with its Slack route) served on loopback; its URL and its Slack side."""
    settings = settings.model_copy(update={"inbox_host": "127.0.0.1", "inbox_port": free_port()})
    app = server.make_app(client, settings)
    slack: Slack = app.state.slack
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(app, settings, stop))
    url = f"http://127.0.0.1:{settings.inbox_port}"

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(url + "/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(up, timeout=DEADLINE_S, what="the inbox to answer")
        yield url, slack
    finally:
        stop.set()
        await task


async def posted(slack: Slack, standin: StandIn, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        await slack.bridge.sync()
        return next(
            (m for m in standin.messages.values() if m["metadata"]["event_payload"]["workflow_id"] == handle.id), None
        )

    return await wait_for(found, timeout=DEADLINE_S, what="the call's Slack message")


async def send(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    # A Host the inbox's pages would refuse: Slack's requests arrive under the public name.
    async with httpx.AsyncClient(timeout=DEADLINE_S) as http:
        return await http.post(url + INTERACTIONS_PATH, content=body, headers={**headers, "Host": "inbox.example.com"})


async def test_a_signed_click_approves_as_the_slack_service_for_the_person(client: Client, tmp_path: Path) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        async with airlock_worker(client, project), inbox(client, project.settings) as (url, slack):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="support", input="Close T-1, it is fixed.", requester="carol"),
                id=workflow_id("slack-click"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            await wait_pending(handle)
            message = await posted(slack, standin, handle)
            shown = buttons(message)["airlock_approve"]["value"]
            body, headers = signed_request(click(standin, message, "airlock_approve", user="U0ALICE"))
            reply = await send(url, body, headers)
            assert reply.status_code == 200, reply.text
            assert "You approved tickets.close_ticket" in reply.text and "as alice" in reply.text
            result = await asyncio.wait_for(handle.result(), DEADLINE_S)
            [record] = result.approvals
            assert (record.decision, record.decided_by) == ("approved", "alice")
            assert record.identity is not None and record.identity.startswith("signed:slack/")
            audit = await handle.query("audit", result_type=list)
            [approved] = [e for e in audit if e["event"] == "approved"]
            assert approved["actor"] == "alice" and approved["identity"].startswith("signed:slack/")
            assert count_writes(project.tickets_db, "close_ticket") == 1
            # The message says so at once, without buttons; the person was answered in Slack.
            assert "Approved by alice (signed:slack/" in texts(message) and buttons(message) == {}
            assert any("You approved" in text for text in standin.answered())

            # The same request again is a replay; a new click on the closed message is stale.
            replayed = await send(url, body, headers)
            assert "already handled" in replayed.text
            late = await send(
                url, *signed_request(click(standin, message, "airlock_approve", user="U0ALICE", value=shown))
            )
            assert "no longer waits" in late.text
            assert count_writes(project.tickets_db, "close_ticket") == 1
            assert len([e for e in await handle.query("audit", result_type=list) if e["event"] == "approved"]) == 1
    await assert_replays(handle)


async def test_every_refused_click_changes_nothing_and_is_answered(client: Client, tmp_path: Path) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        async with airlock_worker(client, project), inbox(client, project.settings) as (url, slack):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="support", input="Close T-1, it is fixed.", requester="dave"),
                id=workflow_id("slack-refused"),
                task_queue=project.settings.task_queue,
            )
            [pending] = await wait_pending(handle)
            message = await posted(slack, standin, handle)
            approve = buttons(message)["airlock_approve"]["value"]

            async def refused(payload: dict[str, Any], **signing: Any) -> httpx.Response:
                reply = await send(url, *signed_request(payload, **signing))
                assert await pending_of(handle) == [pending]
                return reply

            unknown = await refused(click(standin, message, "airlock_approve", user="U0NOBODY"))
            assert "not linked to an approver" in unknown.text
            forged = await refused(
                click(standin, message, "airlock_approve", user="U0ALICE"), secret="not-the-secret-at-all"
            )
            assert forged.status_code == 401 and "bad Slack signature" in forged.text
            old = await refused(click(standin, message, "airlock_approve", user="U0ALICE"), at=int(time.time()) - 600)
            assert old.status_code == 401 and "more than five minutes" in old.text
            not_approver = await refused(click(standin, message, "airlock_approve", user="U0CAROL"))
            assert "carol may not decide this call" in not_approver.text
            not_vouched = await refused(click(standin, message, "airlock_reject", user="U0BOB", reason="no"))
            assert "may not assert 'bob'" in not_vouched.text
            other_hash = approve.replace(pending["arguments_sha256"], "0" * 64)
            stale = await refused(click(standin, message, "airlock_approve", user="U0ALICE", value=other_hash))
            assert "arguments changed" in stale.text
            first = click(standin, message, "airlock_approve", user="U0NOBODY")
            await refused(first)
            replay = await refused(first)
            assert "already handled" in replay.text

            # Each answer reached Slack, but the forged and old ones: those came from nobody we may answer.
            answers = standin.answered()
            assert len(answers) == 6 and all(a.startswith("Nothing changed: ") for a in answers)
            audit = await handle.query("audit", result_type=list)
            assert [e["event"] for e in audit] == ["requested"]
            assert count_writes(project.tickets_db, "close_ticket") == 0
            assert buttons(message) != {}
            await handle.terminate("test over")
    await assert_replays(handle)
