"""Input requests from a third-party server on the 2025-11-25 protocol: server-everything over HTTP.

`trigger-elicitation-request` sends `elicitation/create` in the middle of its call (no
stateless retry on that protocol): the worker answers `cancel` while nobody has answered, the
run lists the question, and the call is sent again with the answer. The schema uses every kind
of field the spec allows (formats, enums with titles, multi-selects).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from tests.support.asking import answer, wait_input
from tests.support.everything import everything_http, everything_servers
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import pending_of, workflow_id
from workflows.payloads import AgentRequest, AgentResult

AGENT = """
name = "tester"
instructions = "You try tools."
mcp_servers = ["everything"]
[tools]
"trigger-elicitation-request" = "auto"
"*" = "deny"
[approval]
approvers = ["alice"]
"""
TOOL = "trigger-elicitation-request"


async def test_a_mid_call_elicitation_is_answered_by_a_person(client: Client, tmp_path: Path) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        project = make_project(
            tmp_path,
            agents={"tester": AGENT},
            servers=everything_servers(url),
            script={"tester": [{"tool_call": {"name": TOOL, "arguments": {}}}, {"message": "Done."}]},
        )
        async with airlock_worker(client, project) as activities:
            spy = record_model(activities)
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="tester", input="Try it.", requester="carol"),
                id=workflow_id("ask-everything"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            pending = await wait_input(handle)
            schema = pending["question"]["requested_schema"]
            assert schema["required"] == ["name"] and "untitledMultipleSelectEnum" in schema["properties"]
            for content in ({"name": "Ada", "untitledMultipleSelectEnum": ["Flute"]}, {"check": True}):
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update("answer", answer(pending, "alice", content=content), result_type=dict)
            assert len(await pending_of(handle)) == 1
            content = {
                "name": "Ada Lovelace",
                "check": True,
                "integer": 7,
                "untitledMultipleSelectEnum": ["Piano", "Drums"],
                "titledSingleSelectEnum": "hero-3",
            }
            await handle.execute_update("answer", answer(pending, "alice", content=content), result_type=dict)
            result = await handle.result()
    assert result.status == "completed"
    [output] = spy.tool_outputs()
    assert "User provided the requested information" in output
    assert "- Name: Ada Lovelace" in output and "- Favorite Integer: 7" in output
    await assert_replays(handle)


async def test_a_url_request_is_accepted_without_content(client: Client, tmp_path: Path) -> None:
    agent = AGENT.replace('"trigger-elicitation-request" = "auto"', '"trigger-url-elicitation" = "auto"')
    call = {
        "tool_call": {
            "name": "trigger-url-elicitation",
            "arguments": {"url": "https://example.com/consent", "message": "Please consent."},
        }
    }
    async with everything_http(tmp_path / "everything.log") as url:
        project = make_project(
            tmp_path,
            agents={"tester": agent},
            servers=everything_servers(url),
            script={"tester": [call, {"message": "Done."}]},
        )
        async with airlock_worker(client, project) as activities:
            spy = record_model(activities)
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="tester", input="Try it.", requester="carol"),
                id=workflow_id("ask-url"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            pending = await wait_input(handle)
            question = pending["question"]
            assert (question["mode"], question["url"], question["message"]) == (
                "url",
                "https://example.com/consent",
                "Please consent.",
            )
            assert question["requested_schema"] is None and question["elicitation_id"]
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update("answer", answer(pending, "alice", content={"done": 1}), result_type=dict)
            await handle.execute_update("answer", answer(pending, "alice"), result_type=dict)
            result = await handle.result()
    assert result.status == "completed"
    # The server minted a new elicitation id for the second send; the answer still matched.
    [output] = spy.tool_outputs()
    assert "User completed the URL elicitation flow" in output
    assert question["elicitation_id"] not in output
    await assert_replays(handle)
