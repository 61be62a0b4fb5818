"""The Slack bridge keeps one message per waiting call, and closes it on every ending.

Real runs on the real dev server, a real worker and tickets server; the real `slack_sdk`
client posts to a local stand-in of the Web API that records every call.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.approvers import load_directory, slack_users
from console import signing
from console.slack import Slack, from_settings
from console.slack.bridge import message_key
from mcp_servers.tomlfiles import ConfigError
from runtime.devserver import free_port
from tests.support.airlock_cli import AIRLOCK, address_of
from tests.support.asking import book, host_agent, project_for, server_log, wait_input
from tests.support.asking import start as start_asking
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import SUPPORT_AGENT, Project, airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
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
from workflows.payloads import AgentRequest

COMMENT = {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": "fixed\u202edeen"}}}
SCRIPT = {name: [COMMENT, {"message": "Done."}] for name in ("support", "hasty", "escalating", "quorum")}
HASTY_AGENT = SUPPORT_AGENT.replace('name = "support"', 'name = "hasty"').replace(
    'approvers = ["alice", "bob"]', 'approvers = ["alice"]\ntimeout = "12s"'
)
ESCALATING_AGENT = SUPPORT_AGENT.replace('name = "support"', 'name = "escalating"').replace(
    'approvers = ["alice", "bob"]', 'approvers = ["alice", "bob"]\nescalate_after = "12s"\nescalate_to = ["dave"]'
)
QUORUM_AGENT = SUPPORT_AGENT.replace('name = "support"', 'name = "quorum"').replace(
    'approvers = ["alice", "bob"]', 'approvers = ["alice", "bob"]\nrequired = 2'
)
DEADLINE_S = 40.0


def slack_project(tmp_path: Path, standin: StandIn) -> Project:
    files = write_slack_files(
        tmp_path,
        standin,
        people={"alice": "U0ALICE", "bob": "U0BOB", "carol": None, "dave": None},
        may_assert=["alice", "bob"],
        channels={"hasty": "#hasty"},
    )
    return make_project(
        tmp_path,
        agents={"support": SUPPORT_AGENT, "hasty": HASTY_AGENT, "escalating": ESCALATING_AGENT, "quorum": QUORUM_AGENT},
        script=SCRIPT,
        approvers_file=files.approvers,
        slack_file=files.slack_toml,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
    )


def the_slack(client: Client, project: Project) -> Slack:
    slack = from_settings(client, project.settings)
    assert slack is not None
    return slack


async def start(client: Client, project: Project, agent: str, prefix: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent=agent, input="Close T-1, it is fixed.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
    )


async def message_of(slack: Slack, standin: StandIn, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """Sync until the bridge has posted this run's call; its message as the channel shows it."""

    async def posted() -> dict[str, Any] | None:
        await slack.bridge.sync()
        for message in standin.messages.values():
            if message["metadata"]["event_payload"]["workflow_id"] == handle.id:
                return message
        return None

    return await wait_for(posted, timeout=DEADLINE_S, what="the call's Slack message")


async def closed(slack: Slack, message: dict[str, Any]) -> dict[str, Any]:
    """Sync until the message says its call no longer waits."""

    async def done() -> dict[str, Any] | None:
        await slack.bridge.sync()
        return message if message["metadata"]["event_payload"]["open"] is False else None

    return await wait_for(done, timeout=DEADLINE_S, what="the Slack message to close")


async def test_a_waiting_call_is_posted_once_and_closed_when_approved_elsewhere(client: Client, tmp_path: Path) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        async with airlock_worker(client, project):
            slack = the_slack(client, project)
            handle = await start(client, project, "support", "slack-approved")
            [pending] = await wait_pending(handle)
            message = await message_of(slack, standin, handle)
            assert message["channel"] == "C0APPROVALS"
            shown = texts(message)
            assert "support → tickets.comment_on_ticket" in shown
            assert "fixed\\u202edeen" in shown and "\u202e" not in shown  # the hidden character, made visible
            assert pending["arguments_sha256"] in shown
            assert "Requester: carol (claimed)" in shown
            assert "Approvals still needed: 1\n" in shown and "May decide: alice, bob" in shown
            assert "Deadline: <!date^" in shown
            assert set(buttons(message)) == {"airlock_approve", "airlock_reject", "airlock_open"}
            assert buttons(message)["airlock_open"]["url"].startswith("https://inbox.example.com/call?wf=")
            assert message["metadata"]["event_type"] == "airlock_call"
            assert message["metadata"]["event_payload"]["sha256"] == pending["arguments_sha256"]

            # A restarted bridge neither posts again nor loses the message.
            restarted = the_slack(client, project)
            await restarted.bridge.sync()
            await slack.bridge.sync()
            assert len(standin.called("chat.postMessage")) == 1

            # Decided elsewhere (a signed review from alice's own key): the message follows.
            key = signing.load_private_key(tmp_path / "alice.key")
            payload = signing.sign_review(key, pending, workflow_id=handle.id, approver="alice", decision="approve")
            await handle.execute_update("review", payload)
            await asyncio.wait_for(handle.result(), DEADLINE_S)
            await closed(restarted, message)
            assert "Approved: support → tickets.comment_on_ticket" in texts(message)
            assert "Approved by alice (signed:alice/" in texts(message)
            assert "Outcome: " in texts(message)
            assert buttons(message) == {}
            assert len(standin.called("chat.postMessage")) == 1
    await assert_replays(handle)


async def test_a_quorum_message_shows_who_approved_so_far(client: Client, tmp_path: Path) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        async with airlock_worker(client, project):
            slack = the_slack(client, project)
            handle = await start(client, project, "quorum", "slack-quorum")
            [pending] = await wait_pending(handle)
            message = await message_of(slack, standin, handle)
            assert "Approvals still needed: 2\n" in texts(message)
            for name in ("alice", "bob"):
                key = signing.load_private_key(tmp_path / f"{name}.key")
                payload = signing.sign_review(key, pending, workflow_id=handle.id, approver=name, decision="approve")
                await handle.execute_update("review", payload)
                if name == "alice":

                    async def counted() -> bool:
                        await slack.bridge.sync()
                        return "Approvals still needed: 1 · approved so far: alice" in texts(message)

                    await wait_for(counted, timeout=DEADLINE_S, what="the message to count alice's approval")
                    assert set(buttons(message)) == {"airlock_approve", "airlock_reject", "airlock_open"}
            await asyncio.wait_for(handle.result(), DEADLINE_S)
            await closed(slack, message)
            assert "Approved by alice (signed:alice/" in texts(message) and ", bob (signed:bob/" in texts(message)
            assert len(standin.called("chat.postMessage")) == 1
    await assert_replays(handle)


async def test_the_message_follows_escalation_and_says_rejected_timed_out_and_run_ended(
    client: Client, tmp_path: Path
) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        async with airlock_worker(client, project):
            slack = the_slack(client, project)
            rejected = await start(client, project, "support", "slack-rejected")
            timed_out = await start(client, project, "hasty", "slack-timeout")
            cancelled = await start(client, project, "support", "slack-cancelled")
            terminated = await start(client, project, "support", "slack-terminated")
            messages = {}
            # The run that times out first: its call waits only 12 s, even on a loaded machine.
            for handle in (timed_out, rejected, cancelled, terminated):
                await wait_pending(handle)
                messages[handle.id] = await message_of(slack, standin, handle)
            assert messages[timed_out.id]["channel"] == "C0HASTY"
            escalating = await start(client, project, "escalating", "slack-escalating")
            await wait_pending(escalating)
            message = messages[escalating.id] = await message_of(slack, standin, escalating)
            assert "May decide: alice, bob\n" in texts(message)

            [pending] = await wait_pending(rejected)
            key = signing.load_private_key(tmp_path / "bob.key")
            payload = signing.sign_review(
                key, pending, workflow_id=rejected.id, approver="bob", decision="reject", reason="not yet"
            )
            await rejected.execute_update("review", payload)
            await cancelled.cancel()
            await terminated.terminate("test over")

            async def escalated() -> bool:
                await slack.bridge.sync()
                return "May decide: alice, bob, dave" in texts(message)

            await wait_for(escalated, timeout=DEADLINE_S, what="the message to show the escalation")
            assert buttons(message) != {}
            await escalating.terminate("test over")

            for handle in (rejected, timed_out, cancelled, terminated, escalating):
                await closed(slack, messages[handle.id])
            assert "Rejected by bob (signed:bob/" in texts(messages[rejected.id])
            assert "not yet" in texts(messages[rejected.id])
            assert "Timed out: no decision before the deadline" in texts(messages[timed_out.id])
            assert "The run ended (canceled) before this call was decided." in texts(messages[cancelled.id])
            assert "The run ended (terminated) before this call was decided." in texts(messages[terminated.id])
            for message in messages.values():
                assert buttons(message) == {}
            assert len(standin.called("chat.postMessage")) == 5
    for handle in (rejected, timed_out, escalating):
        await assert_replays(handle)


def test_a_slack_id_is_checked_and_kept_from_the_directory_runs_see(tmp_path: Path) -> None:
    key = signing.public_key_entry(signing.public_bytes(signing.generate_key()))
    path = tmp_path / "approvers.toml"
    path.write_text(f'[people.alice]\nkeys = ["{key}"]\nslack = "U0ALICE"\n\n[people.bob]\nkeys = ["{key}x"]\n')
    with pytest.raises(ConfigError, match=re.escape("people.bob.keys")):
        slack_users(path)  # the whole file is checked, as the worker checks it
    path.write_text(f'[people.alice]\nkeys = ["{key}"]\nslack = "U0ALICE"\n')
    assert slack_users(path) == {"U0ALICE": "alice"}
    assert load_directory(path).people["alice"].model_dump() == {"keys": [key], "may_assert": []}
    for bad in ('"alice"', '"u0alice"', '"U0ALICE\\n"', "7"):
        path.write_text(f'[people.alice]\nkeys = ["{key}"]\nslack = {bad}\n')
        with pytest.raises(ConfigError, match=re.escape("people.alice.slack")):
            load_directory(path)
    path.write_text(
        f'[people.alice]\nkeys = ["{key}"]\nslack = "U0A"\n\n[people.bob]\nkeys = ["{key}"]\nslack = "U0A"\n'
    )
    with pytest.raises(ConfigError, match=re.escape("already people.alice's Slack id")):
        load_directory(path)


async def test_airlock_inbox_runs_the_bridge_and_takes_clicks(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        port = free_port()
        log = tmp_path / "inbox.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        environ.update(
            {
                "AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env),
                "AIRLOCK_INBOX_TRUSTED_PROXIES": "127.0.0.2",
                "AIRLOCK_APPROVERS_FILE": str(project.settings.approvers_file),
                "AIRLOCK_SLACK_FILE": str(project.settings.slack_file),
                "AIRLOCK_SLACK_BOT_TOKEN": BOT_TOKEN,
                "AIRLOCK_SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "AIRLOCK_DATA_DIR": str(tmp_path / "inbox-data"),
                "AIRLOCK_LOG_FORMAT": "json",
            }
        )
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                str(AIRLOCK),
                *("inbox", "--host", "127.0.0.1", "--port", str(port)),
                env=environ,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=sink,
            )
        try:
            async with airlock_worker(client, project):
                handle = await start(client, project, "support", "slack-inbox")
                await wait_pending(handle)

                async def posted() -> dict[str, Any] | None:
                    return next(iter(standin.messages.values()), None)

                message = await wait_for(posted, timeout=DEADLINE_S, what="the inbox's bridge to post")
                body, headers = signed_request(click(standin, message, "airlock_approve", user="U0ALICE"))
                async with httpx.AsyncClient(timeout=DEADLINE_S) as http:
                    reply = await http.post(
                        f"http://127.0.0.1:{port}/slack/interactions", content=body, headers=headers
                    )
                assert "You approved" in reply.text, reply.text
                await asyncio.wait_for(handle.result(), DEADLINE_S)
                assert "Approved by alice (signed:slack/" in texts(message)
        finally:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), DEADLINE_S)
    written = log.read_text()
    assert "slack message posted" in written and "slack decision recorded" in written
    assert BOT_TOKEN not in written and SIGNING_SECRET not in written
    await assert_replays(handle)


async def test_an_input_request_is_answered_from_slack(client: Client, tmp_path: Path) -> None:
    with slack_standin() as standin:
        files = write_slack_files(tmp_path, standin, people={"alice": "U0ALICE"}, may_assert=["alice"])
        project = project_for(
            tmp_path,
            {"host": book("Q")},
            agents={"host": host_agent(approval='approvers = ["alice"]')},
            approvers_file=files.approvers,
            slack_file=files.slack_toml,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
        )
        async with airlock_worker(client, project):
            slack = the_slack(client, project)
            handle = await start_asking(client, project)
            asked = await wait_input(handle)
            message = await message_of(slack, standin, handle)
            shown = texts(message)
            assert "Input requested: host → asking.book_room" in shown
            assert "The server asks: How many people for room Q?" in shown
            assert asked["question"]["question_sha256"] in shown
            blocks = {b.get("block_id"): b for b in message["blocks"]}
            assert blocks["field.size"]["element"]["type"] == "number_input"
            assert blocks["field.size"]["optional"] is False
            assert set(buttons(message)) == {"airlock_send", "airlock_decline", "airlock_open"}
            assert buttons(message)["airlock_open"]["url"].startswith("https://inbox.example.com/input?wf=")

            app = Starlette(routes=[slack.route])
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inbox") as http:

                async def send(**form: dict[str, Any]) -> str:
                    body, headers = signed_request(click(standin, message, "airlock_send", user="U0ALICE", form=form))
                    return (await http.post("/slack/interactions", content=body, headers=headers)).text

                # The schema's maximum is 50: the run refuses the answer and keeps asking.
                too_many = await send(**{"field.size": {"type": "number_input", "value": "500"}})
                assert too_many.startswith("Nothing changed: "), too_many
                missing = await send(**{"field.note": {"type": "plain_text_input", "value": "x"}})
                assert "required" in missing
                assert await wait_input(handle) == asked
                # The server was told `cancel` while a person had not answered (the worker never waits).
                assert [e["action"] for e in server_log(project)] == ["cancel"]
                sent = await send(
                    **{
                        "field.size": {"type": "number_input", "value": "4"},
                        "field.note": {"type": "plain_text_input", "value": "projector please"},
                    }
                )
                assert "You answered asking.book_room's question" in sent and "as alice" in sent
            result = await asyncio.wait_for(handle.result(), DEADLINE_S)
            assert result.status == "completed"
            [logged] = [e for e in server_log(project) if e["applied"]]
            assert logged["action"] == "accept" and logged["content"] == {"size": 4, "note": "projector please"}
            await closed(slack, message)
            assert "Answered by alice (signed:slack/" in texts(message) and buttons(message) == {}
    await assert_replays(handle)


async def test_a_message_slack_lost_is_forgotten_and_a_broken_state_file_stops_the_start(
    client: Client, tmp_path: Path
) -> None:
    with slack_standin() as standin:
        project = slack_project(tmp_path, standin)
        state = tmp_path / "slack-state.json"
        gone = {"workflow_id": "no-such-run", "run_id": "", "call_id": "call-1", "arguments_sha256": "0" * 64}
        lost = {"channel": "C0APPROVALS", "ts": "1.000001", "digest": "", "call": gone}
        state.write_text(json.dumps({message_key("no-such-run", "", "call-1"): lost}))
        slack = the_slack(client, project)
        assert slack.bridge.posted("no-such-run", "", "call-1") is not None
        await slack.bridge.sync()  # the run is gone; Slack says the message is too: both forgotten
        [update] = standin.called("chat.update")
        assert "The run is gone" in texts(update)
        assert slack.bridge.posted("no-such-run", "", "call-1") is None
        assert json.loads(state.read_text()) == {}

        state.write_text("{not json")
        with pytest.raises(ConfigError, match="cannot read the Slack state file"):
            the_slack(client, project)
