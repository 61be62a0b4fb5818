"""Images from tools reach a model that takes images (agent `model_takes_images = true`), through the
real OpenAI client on the Responses API; otherwise, and beyond max_result_bytes, a placeholder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client

from tests.support.everything import everything_http, everything_servers
from tests.support.histories import assert_replays, history_text
from tests.support.long_running import long_servers
from tests.support.openai_stub import OpenAIStub, Text, ToolCalls
from tests.support.project import airlock_worker, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

API_KEY = "sk-test-airlock-images-71c2"


def agent(server: str, *, images: bool) -> str:
    """An agent file reading images from `server`."""
    return f"""
name = "viewer"
instructions = "You describe images."
mcp_servers = ["{server}"]
model_takes_images = {str(images).lower()}
"""


def tool_output(body: dict[str, Any]) -> Any:
    """The output of the one function call a Responses request carries back."""
    [item] = [i for i in body["input"] if isinstance(i, dict) and i.get("type") == "function_call_output"]
    return item["output"]


async def _run(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
    servers: str,
    agent_text: str,
    call: tuple[str, dict[str, Any]],
    environ: dict[str, str] | None = None,
) -> tuple[OpenAIStub, Any]:
    stub = OpenAIStub([ToolCalls([call]), Text("described")])
    stubs.append(stub)
    stub.start()
    project = make_project(
        tmp_path,
        agents={"viewer": agent_text},
        servers=servers,
        model_provider="openai",
        openai_api_key=API_KEY,
        openai_base_url=stub.base_url,
        openai_api="responses",
    )
    project.environ.update(environ or {})
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="viewer", input="What is in the image?", requester="carol"),
            id=workflow_id("images"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()
    assert result.status == "completed"
    return stub, handle


async def test_a_model_that_takes_images_receives_the_tool_image(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        stub, handle = await _run(
            client, tmp_path, stubs, everything_servers(url), agent("everything", images=True), ("get-tiny-image", {})
        )
    output = tool_output(stub.requests[1])
    assert isinstance(output, list), output
    [image] = [part for part in output if part.get("type") == "input_image"]
    assert image["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")  # the PNG the server sent
    text = " ".join(part["text"] for part in output if part.get("type") == "input_text")
    assert "[image: image/png, " in text and "bytes, attached]" in text
    await assert_replays(handle)


async def test_a_model_that_does_not_take_images_gets_the_placeholder(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
) -> None:
    async with everything_http(tmp_path / "everything.log") as url:
        stub, handle = await _run(
            client, tmp_path, stubs, everything_servers(url), agent("everything", images=False), ("get-tiny-image", {})
        )
    output = tool_output(stub.requests[1])
    assert isinstance(output, str) and "bytes, not shown]" in output
    assert "iVBORw0KGgo" not in await history_text(handle)


async def test_a_huge_image_stays_a_placeholder_and_out_of_history(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
) -> None:
    events = tmp_path / "events.jsonl"
    stub, handle = await _run(
        client,
        tmp_path,
        stubs,
        long_servers(events),
        agent("long", images=True),
        ("huge_image", {"kb": 2000}),
        {"LONG_EVENTS": str(events)},
    )
    output = tool_output(stub.requests[1])
    flat = output if isinstance(output, str) else " ".join(p.get("text", "") for p in output)
    assert "[image: image/png, 2048004 bytes, not shown]" in flat
    assert not isinstance(output, list) or all(p.get("type") != "input_image" for p in output)
    history = await history_text(handle)
    assert len(history) < 500_000, f"history holds {len(history)} characters"
