"""The `openai` provider end to end: Temporal, the tickets server, and a real HTTP model endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from temporalio.client import Client, WorkflowHandle

from tests.support.histories import assert_replays, history_text
from tests.support.openai_stub import Fault, OpenAIStub, Reply, Text, ToolCalls
from tests.support.project import Project, airlock_worker, make_project
from tests.support.runs import failure_of, workflow_id
from workflows.payloads import AgentRequest, AgentResult

Api = Literal["chat_completions", "responses"]
APIS: list[Api] = ["chat_completions", "responses"]

# Distinctive, so finding it anywhere in a history cannot be a coincidence.
API_KEY = "sk-test-airlock-5c81f0e2"
T1_TITLE = "Login page returns 500 after password reset"
ANSWER = "T-1 is a login bug."
READ_THEN_ANSWER: list[Reply] = [ToolCalls([("get_ticket", {"ticket_id": "T-1"})]), Text(ANSWER)]


def serve(stubs: list[OpenAIStub], replies: list[Reply]) -> OpenAIStub:
    """Start an OpenAI-compatible stub answering `replies` in order."""
    stub = OpenAIStub(replies)
    stubs.append(stub)
    stub.start()
    return stub


def openai_project(root: Path, stub: OpenAIStub, api: Api) -> Project:
    """The default support project, with its model behind `stub`."""
    return make_project(
        root,
        model_provider="openai",
        openai_api_key=API_KEY,
        openai_base_url=stub.base_url,
        openai_api=api,
    )


async def start_support(client: Client, project: Project, prefix: str) -> WorkflowHandle[Any, AgentResult]:
    """Start the support agent on T-1."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="What is T-1 about?", requester="carol"),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


def offered_tools(body: dict[str, Any], api: Api) -> set[str]:
    """Names of the function tools a model request offers."""
    tools = body.get("tools") or []
    if api == "chat_completions":
        return {tool["function"]["name"] for tool in tools}
    return {tool["name"] for tool in tools}


def tool_results(body: dict[str, Any], api: Api) -> dict[str, str]:
    """Tool results a model request carries back to the model, by call id."""

    def text(content: Any) -> str:
        return content if isinstance(content, str) else json.dumps(content)

    if api == "chat_completions":
        return {m["tool_call_id"]: text(m["content"]) for m in body["messages"] if m.get("role") == "tool"}
    return {
        item["call_id"]: text(item["output"])
        for item in body["input"]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


@pytest.mark.parametrize("api", APIS)
async def test_tool_call_then_answer(client: Client, tmp_path: Path, stubs: list[OpenAIStub], api: Api) -> None:
    stub = serve(stubs, READ_THEN_ANSWER)
    project = openai_project(tmp_path, stub, api)
    async with airlock_worker(client, project):
        handle = await start_support(client, project, f"openai-{api}")
        result = await handle.result()

    assert result.output == ANSWER
    assert result.tool_calls == 1
    assert result.usage.requests == 2
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert [body["_path"] for body in stub.requests] == [f"/v1/{api.replace('_', '/')}"] * 2
    first, second = stub.requests
    for body in stub.requests:
        assert body["model"] == "gpt-4.1-mini", "the agent file's model reaches the provider"
        assert "get_ticket" in offered_tools(body, api)
    assert tool_results(first, api) == {}
    [(call_id, text)] = tool_results(second, api).items()
    assert call_id == "call_1", "the result answers the stub's own tool call"
    assert T1_TITLE in text, "the model sees what the tickets server returned"
    history = await history_text(handle)
    assert T1_TITLE in history, "payloads are decoded, so a leaked key would be found"
    assert API_KEY not in history
    await assert_replays(handle)


@pytest.mark.parametrize("api", APIS)
async def test_rate_limit_is_retried_without_repeating_tools(
    client: Client, tmp_path: Path, stubs: list[OpenAIStub], api: Api
) -> None:
    # The 429 answers the second turn, after the tool ran: the retry must not run it again.
    replies: list[Reply] = [READ_THEN_ANSWER[0], Fault(429, retry_after=0.2), READ_THEN_ANSWER[1]]
    stub = serve(stubs, replies)
    project = openai_project(tmp_path, stub, api)
    async with airlock_worker(client, project):
        handle = await start_support(client, project, f"openai-429-{api}")
        result = await handle.result()

    assert result.output == ANSWER
    assert len(stub.requests) == len(READ_THEN_ANSWER) + 1, "exactly one extra request"
    assert stub.remaining == 0
    assert result.tool_calls == 1
    assert result.usage.requests == 2
    assert API_KEY not in await history_text(handle)
    await assert_replays(handle)


@pytest.mark.parametrize("api", APIS)
async def test_bad_request_fails_at_once_with_model_error(
    client: Client, tmp_path: Path, stubs: list[OpenAIStub], api: Api
) -> None:
    stub = serve(stubs, [Fault(400), *READ_THEN_ANSWER])
    project = openai_project(tmp_path, stub, api)
    async with airlock_worker(client, project):
        handle = await start_support(client, project, f"openai-400-{api}")
        cause = await failure_of(handle)
    assert cause.type == "ModelError"
    assert "400" in cause.message
    assert len(stub.requests) == 1, "a permanent error is not retried"
    assert API_KEY not in await history_text(handle)
    await assert_replays(handle)
