"""A server's question during a call is decided under the call's rules, and never asks for a secret.

Real Temporal, the asking MCP server (tests/support/asking_mcp.py) as a real stdio child, the
scripted model. The attacks:
- alice and bob approve `transfer(amount=100)` (`required = 2`); while it runs, the server asks
  "Destination account?"; bob alone answers with his account. The answer takes the call's quorum:
  two people giving the very same answer; a differing answer starts the count again.
- a server's form asks "Enter your API key": it is refused on the worker (the server hears
  `cancel`), never shown to anyone nor answered into history, and the model is told.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.project import Project, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, pending_of, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult

ASKING_STDIO = """
[servers.asking]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.asking_mcp"]
env = ["ASKING_LOG"]
trust = "trusted"
"""

TREASURER = """
name = "treasurer"
instructions = "You move money."
mcp_servers = ["asking"]

[tools]
"*" = "{policy}"

[approval]
approvers = ["alice", "bob"]
required = {required}
"""


def project_for(tmp_path: Path, tool: str, arguments: dict[str, Any], policy: str, required: int) -> Project:
    """A project whose treasurer calls `tool` once, then says it is done."""
    script = {"treasurer": [{"tool_call": {"name": tool, "arguments": arguments}}, {"message": "Done."}]}
    agent = TREASURER.format(policy=policy, required=required)
    project = make_project(tmp_path, agents={"treasurer": agent}, script=script, servers=ASKING_STDIO)
    project.environ["ASKING_LOG"] = str(tmp_path / "asking.jsonl")
    return project


def server_log(project: Project) -> list[dict[str, Any]]:
    """What the asking server received, one entry per call."""
    path = Path(project.environ["ASKING_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def start(client: Client, project: Project) -> WorkflowHandle[Any, AgentResult]:
    """Start a treasurer run requested by carol."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="treasurer", input="Pay the invoice.", requester="carol"),
        id=workflow_id("quorum"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def input_request(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's pending input request, once there is one."""

    async def check() -> dict[str, Any] | None:
        found = [p for p in await pending_of(handle) if p.get("kind") == "input"]
        return found[0] if found else None

    return await wait_for(check, what="an input request")


async def answer(handle: WorkflowHandle[Any, Any], pending: dict[str, Any], who: str, account: str) -> dict[str, Any]:
    """`who` accepts the question with `account`; the recorded answer."""
    payload = {
        "call_id": pending["call_id"],
        "approver": who,
        "question_sha256": pending["question"]["question_sha256"],
        "action": "accept",
        "content": {"account": account},
    }
    result: dict[str, Any] = await handle.execute_update("answer", payload, result_type=dict)
    return result


async def refused(handle: WorkflowHandle[Any, Any], pending: dict[str, Any], who: str, account: str) -> str:
    """`who`'s answer is refused; the reason."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await answer(handle, pending, who, account)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


def sent(project: Project) -> list[dict[str, Any]]:
    """The transfers the server applied."""
    return [line for line in server_log(project) if line["applied"]]


async def test_an_answer_during_a_gated_call_needs_the_calls_quorum(client: Client, tmp_path: Path) -> None:
    project = project_for(tmp_path, "transfer", {"amount": 100}, "approve", required=2)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        [approval] = await wait_pending(handle)
        await handle.signal("approve", decision(approval, "alice"))
        await handle.signal("approve", decision(approval, "bob"))
        question = await input_request(handle)
        assert question["question"]["message"] == "Destination account?"
        assert question["approvals_needed"] == 2, "the question takes as many people as the call did"

        # Bob alone: recorded, but the money does not move.
        recorded = await answer(handle, question, "bob", "BOB-666")
        assert recorded["event"] == "answered" and recorded["actor"] == "bob"
        assert "1 more identical answer" in (recorded["reason"] or "")
        [waiting] = [p for p in await pending_of(handle) if p.get("kind") == "input"]
        assert waiting["approvals_needed"] == 1 and waiting["approved_by"] == ["bob"]
        assert "already gave this answer" in await refused(handle, question, "bob", "BOB-666")
        assert "forbids self-approval" in await refused(handle, question, "carol", "BOB-666")
        assert "is not an approver" in await refused(handle, question, "mallory", "BOB-666")
        assert sent(project) == []

        # A different answer starts the count again: bob's no longer counts towards it.
        await answer(handle, question, "alice", "ACC-1")
        [waiting] = [p for p in await pending_of(handle) if p.get("kind") == "input"]
        assert waiting["approvals_needed"] == 1 and waiting["approved_by"] == ["alice"]
        assert sent(project) == []

        # Bob gives the same answer as alice: two people agree, and only then is it sent.
        await answer(handle, question, "bob", "ACC-1")
        result = await handle.result()
        assert result.status == "completed"
        assert sent(project) == [
            {
                "tool": "transfer",
                "action": "accept",
                "content": {"account": "ACC-1"},
                "applied": True,
                "key": f"{handle.id}/call-treasurer-0/input-1",
            }
        ]
        assert spy.tool_outputs() == ["sent 100 to ACC-1"]
        audit = await handle.query("audit", result_type=list)
        answered = [(e["actor"], e["answer_sha256"]) for e in audit if e["event"] == "answered"]
        assert [actor for actor, _ in answered] == ["bob", "alice", "bob"]
        assert answered[1][1] == answered[2][1] != answered[0][1]
        [outcome] = [e for e in audit if e["event"] == "outcome"]
        assert outcome["outcome"] == "ok"
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)


async def test_a_decline_during_a_gated_call_takes_one_person_as_a_rejection_does(
    client: Client, tmp_path: Path
) -> None:
    project = project_for(tmp_path, "transfer", {"amount": 100}, "approve", required=2)
    async with airlock_worker(client, project):
        handle = await start(client, project)
        [approval] = await wait_pending(handle)
        await handle.signal("approve", decision(approval, "alice"))
        await handle.signal("approve", decision(approval, "bob"))
        question = await input_request(handle)
        payload = {
            "call_id": question["call_id"],
            "approver": "bob",
            "question_sha256": question["question"]["question_sha256"],
            "action": "decline",
        }
        await handle.execute_update("answer", payload, result_type=dict)
        result = await handle.result()
        assert result.status == "completed"
        assert sent(project) == [], "a decline never sends the money"
        assert [line["action"] for line in server_log(project)] == ["cancel", "decline"]
        await assert_replays(handle)


async def test_a_form_asking_for_an_api_key_is_refused_and_never_shown(client: Client, tmp_path: Path) -> None:
    project = project_for(tmp_path, "connect_service", {}, "auto", required=1)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        # Before the fix the run waited for someone to type the key: bounded, so that fails, not hangs.
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.status == "completed"
        [heard] = spy.tool_outputs()
        assert heard.startswith("Error: asking.connect_service asked for input that Airlock does not accept")
        assert "asks for a secret" in heard and "answered cancel" in heard
        # The server heard `cancel` and connected nothing; nobody was ever asked.
        assert server_log(project) == [
            {
                "tool": "connect_service",
                "action": "cancel",
                "content": None,
                "applied": False,
                "key": f"{handle.id}/call-treasurer-0",
            }
        ]
        audit = await handle.query("audit", result_type=list)
        assert [e for e in audit if e["event"] in ("input_requested", "answered")] == []
        assert "Enter your API key" not in await history_text(handle)
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
