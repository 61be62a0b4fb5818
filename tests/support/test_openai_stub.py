"""Tests for the scripted OpenAI-compatible endpoint, driven by the real openai client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseFunctionToolCall, ResponseOutputMessage

from tests.support.openai_stub import Fault, OpenAIStub, Reply, Text, ToolCalls

pytestmark = pytest.mark.integration  # starts the OpenAI stub server

Serve = Callable[[list[Reply]], OpenAIStub]

TOOL_THEN_TEXT: list[Reply] = [
    ToolCalls([("lookup", {"city": "Oslo"}), ("convert", {"unit": "C"})]),
    Text("It is 4 degrees in Oslo."),
]
USER_MESSAGES = [{"role": "user", "content": "Weather in Oslo?"}]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start stubs on demand and stop every one of them at teardown."""
    started: list[OpenAIStub] = []

    def _serve(replies: list[Reply]) -> OpenAIStub:
        stub = OpenAIStub(replies)
        started.append(stub)
        stub.start()
        return stub

    try:
        yield _serve
    finally:
        for stub in started:
            stub.stop()


def _client(stub: OpenAIStub) -> openai.AsyncOpenAI:
    """Build a real client for ``stub``; retries off so faults surface at once."""
    return openai.AsyncOpenAI(base_url=stub.base_url, api_key="test-key", max_retries=0)


async def test_chat_completions_tool_calls_then_text(serve: Serve) -> None:
    stub = serve(TOOL_THEN_TEXT)
    async with _client(stub) as client:
        first = await client.chat.completions.create(model="stub-model", messages=USER_MESSAGES)  # type: ignore[arg-type]
        second = await client.chat.completions.create(model="stub-model", messages=USER_MESSAGES)  # type: ignore[arg-type]

    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert calls is not None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("call_1", "lookup", {"city": "Oslo"}),
        ("call_2", "convert", {"unit": "C"}),
    ]
    assert first.model == "stub-model"
    assert first.usage is not None and first.usage.total_tokens > 0
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 4 degrees in Oslo."
    assert second.choices[0].message.tool_calls is None
    # The client parses leniently (missing fields pass silently), so validate strictly too.
    ChatCompletion.model_validate(first.to_dict())
    ChatCompletion.model_validate(second.to_dict())
    assert [(r["_path"], r["messages"]) for r in stub.requests] == [("/v1/chat/completions", USER_MESSAGES)] * 2
    assert all("test-key" not in json.dumps(r) for r in stub.requests)
    assert stub.remaining == 0


async def test_responses_tool_calls_then_text(serve: Serve) -> None:
    stub = serve(TOOL_THEN_TEXT)
    async with _client(stub) as client:
        raw_first = await client.responses.with_raw_response.create(model="stub-model", input="Weather in Oslo?")
        second = await client.responses.create(model="stub-model", input="Weather in Oslo?")
    first = raw_first.parse()

    assert first.status == "completed"
    assert [type(item) for item in first.output] == [ResponseFunctionToolCall, ResponseFunctionToolCall]
    assert [(i.id, i.call_id, i.name, json.loads(i.arguments)) for i in first.output] == [  # type: ignore[union-attr]
        ("fc_1", "call_1", "lookup", {"city": "Oslo"}),
        ("fc_2", "call_2", "convert", {"unit": "C"}),
    ]
    assert [type(item) for item in second.output] == [ResponseOutputMessage]
    assert second.output_text == "It is 4 degrees in Oslo."
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens == 0
    # Strict validation of the wire JSON proves no required field is missing.
    Response.model_validate(raw_first.http_response.json())
    Response.model_validate(second.to_dict())
    assert [(r["_path"], r["input"]) for r in stub.requests] == [("/v1/responses", "Weather in Oslo?")] * 2


async def test_faults_surface_as_openai_errors(serve: Serve) -> None:
    stub = serve([Fault(429, retry_after=1.5), Fault(500)])
    async with _client(stub) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="stub-model", messages=USER_MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="stub-model", input="hi")

    assert limited.value.response.headers["retry-after"] == "1.5"
    assert limited.value.code == "rate_limit_exceeded"


async def test_exhausted_script_answers_500(serve: Serve) -> None:
    stub = serve([])
    async with _client(stub) as client:
        with pytest.raises(openai.InternalServerError, match="script exhausted"):
            await client.responses.create(model="stub-model", input="hi")
    assert len(stub.requests) == 1


async def test_missing_bearer_token_is_rejected_without_consuming_a_reply(serve: Serve) -> None:
    stub = serve([Text("unused")])
    async with httpx.AsyncClient(base_url=stub.base_url) as http:
        response = await http.post("/chat/completions", json={"model": "m", "messages": []})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert stub.requests == []
    assert stub.remaining == 1


async def test_streaming_is_refused_without_consuming_a_reply(serve: Serve) -> None:
    stub = serve([Text("unused")])
    async with _client(stub) as client:
        with pytest.raises(openai.BadRequestError, match="streaming not supported by stub"):
            await client.chat.completions.create(model="stub-model", messages=USER_MESSAGES, stream=True)  # type: ignore[arg-type]
    assert stub.remaining == 1


async def test_agents_sdk_runs_a_tool_through_the_stub(serve: Serve) -> None:
    stub = serve([ToolCalls([("add", {"a": 2, "b": 3})]), Text("The sum is 5.")])
    seen: list[tuple[int, int]] = []

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.append((a, b))
        return a + b

    async with _client(stub) as client:
        agent = Agent(
            name="adder",
            instructions="Use the add tool.",
            model=OpenAIChatCompletionsModel(model="stub-model", openai_client=client),
            tools=[add],
        )
        result = await Runner.run(agent, "What is 2 + 3?", run_config=RunConfig(tracing_disabled=True))

    assert seen == [(2, 3)]
    assert result.final_output == "The sum is 5."
    assert stub.requests[0]["tools"][0]["function"]["name"] == "add"
    assert stub.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
