"""A misbehaving model endpoint or model: bounded retries, no repeated tools, the model is told.

The model is the real `openai` client in the worker talking HTTP to a loopback stub (or the
scripted model where the stub cannot express the fault); tools are the real tickets server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.fault_stubs import TimedStub
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.openai_stub import Fault, OpenAIStub, Reply, Text, ToolCalls
from tests.support.project import SUPPORT_AGENT, Project, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, workflow_id
from workflows.payloads import AgentRequest, AgentResult
from workflows.steps import MODEL

API_KEY = "sk-test-faults-0b7e"
# Comments run without approval here, so a repeated tool call would show as a second write.
AUTO_COMMENT_AGENT = SUPPORT_AGENT.replace('"search_*" = "auto"', '"search_*" = "auto"\ncomment_on_ticket = "auto"')
COMMENT = ToolCalls([("comment_on_ticket", {"ticket_id": "T-1", "text": "Looking into it."})])
RUN_DEADLINE_S = 60.0


def openai_project(root: Path, stub: OpenAIStub, agent: str = AUTO_COMMENT_AGENT, **settings: Any) -> Project:
    """A support project whose model is the real `openai` client pointed at `stub`."""
    return make_project(
        root,
        agents={"support": agent},
        model_provider="openai",
        openai_api_key=API_KEY,
        openai_base_url=stub.base_url,
        **settings,
    )


async def run_support(client: Client, project: Project, prefix: str) -> Any:
    """Start a support run; return its handle."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Look at T-1.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


def conversation(body: dict[str, Any]) -> Any:
    """What a model request says, without its transport details."""
    return body.get("input", body.get("messages"))


async def test_429_then_500s_then_success_retries_the_model_call_only(
    client: Client, tmp_path: Path, stubs: list[OpenAIStub]
) -> None:
    retry_after = 1.5
    replies: list[Reply] = [COMMENT, Fault(429, retry_after=retry_after), Fault(500), Fault(500), Text("Commented.")]
    stub = TimedStub(replies)
    stubs.append(stub)
    stub.start()
    project = openai_project(tmp_path, stub, openai_api="chat_completions")
    async with airlock_worker(client, project):
        handle = await run_support(client, project, "model-429-500")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)

    assert result.output == "Commented."
    assert len(stub.requests) == 5 and stub.remaining == 0, "one request per reply, none more"
    assert count_writes(project.tickets_db, "comment_on_ticket") == 1, "the tool ran once"
    assert (result.tool_calls, result.usage.requests) == (1, 2)
    retried = [conversation(body) for body in stub.requests[1:]]
    assert all(turn == retried[0] for turn in retried), "every retry resends the same turn"
    gaps = [later - earlier for earlier, later in zip(stub.arrivals[1:], stub.arrivals[2:], strict=False)]
    first_interval = MODEL.retry.initial_interval.total_seconds()
    assert retry_after > first_interval, "the test tells Retry-After from the policy's own backoff"
    assert gaps[0] >= retry_after * 0.95, f"Retry-After was not honoured: {gaps}"
    assert gaps[1] >= first_interval * MODEL.retry.backoff_coefficient * 0.95, f"no backoff: {gaps}"
    assert gaps[2] >= gaps[1], f"backoff does not grow: {gaps}"
    await assert_replays(handle)


async def test_a_model_that_keeps_failing_is_given_up_after_bounded_attempts(
    client: Client, tmp_path: Path, stubs: list[OpenAIStub]
) -> None:
    attempts = MODEL.retry.maximum_attempts
    # Short Retry-After values keep the test fast; the bound is on attempts, not on time.
    replies: list[Reply] = [COMMENT, *[Fault(503, retry_after=0.05)] * attempts, Text("never sent")]
    stub = OpenAIStub(replies)
    stubs.append(stub)
    stub.start()
    project = openai_project(tmp_path, stub)
    async with airlock_worker(client, project):
        handle = await run_support(client, project, "model-503")
        cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)

    assert cause.type == "ModelError"
    assert "503" in cause.message
    assert len(stub.requests) == 1 + attempts and stub.remaining == 1, f"{len(stub.requests)} requests"
    assert count_writes(project.tickets_db, "comment_on_ticket") == 1
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_a_call_to_an_unknown_or_denied_tool_is_answered_with_an_error(
    client: Client, tmp_path: Path, stubs: list[OpenAIStub]
) -> None:
    agent = SUPPORT_AGENT.replace('"search_*" = "auto"', '"search_*" = "auto"\ncomment_on_ticket = "deny"')
    replies: list[Reply] = [
        ToolCalls([("comment_on_ticket", {"ticket_id": "T-1", "text": "sneaky"}), ("drop_database", {})]),
        Text("Those tools do not exist."),
    ]
    stub = OpenAIStub(replies)
    stubs.append(stub)
    stub.start()
    project = openai_project(tmp_path, stub, agent=agent)
    async with airlock_worker(client, project):
        handle = await run_support(client, project, "unknown-tool")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)

    assert result.output == "Those tools do not exist."
    assert (result.tool_calls, result.approvals) == (0, [])
    assert count_writes(project.tickets_db) == 0
    first, second = stub.requests
    offered = {tool["name"] for tool in first["tools"]}
    assert "comment_on_ticket" not in offered, "a denied tool is never shown to the model"
    told = {item["call_id"]: item["output"] for item in second["input"] if item.get("type") == "function_call_output"}
    assert told == {"call_1": "Tool 'comment_on_ticket' not found.", "call_2": "Tool 'drop_database' not found."}
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


MALFORMED = {
    "support": [
        {
            "tool_calls": [
                {"name": "get_ticket", "arguments": '{"ticket_id": "T-1"'},
                {"name": "close_ticket", "arguments": "{ticket_id: T-1}"},
                {"name": "close_ticket", "arguments": '["T-1", "fixed"]'},
            ]
        },
        {"message": "My arguments were broken."},
    ]
}


async def test_malformed_json_arguments_are_answered_with_an_error(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=MALFORMED)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await run_support(client, project, "malformed-args")
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        audit = await handle.query("audit", result_type=list)

    assert result.output == "My arguments were broken."
    assert (result.tool_calls, result.approvals, audit) == (0, [], [])
    assert count_writes(project.tickets_db) == 0
    told = {
        item["call_id"]: json.dumps(item["output"])
        for item in spy.calls[1].input
        if item.get("type") == "function_call_output"
    }
    read, close_text, close_array = (told[f"call-support-0-{n}"] for n in range(3))
    assert "get_ticket was not called" in read and "not valid JSON" in read
    assert "close_ticket was not called" in close_text and "not valid JSON" in close_text
    assert "close_ticket was not called" in close_array and "must be a JSON object" in close_array
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
