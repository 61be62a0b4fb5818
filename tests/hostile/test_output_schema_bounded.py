"""A tool's `outputSchema` is data, not a program: checking a result cannot freeze the worker.

A hostile MCP server (tests/support/schema_mcp.py, real stdio) declares an `outputSchema` whose
`pattern` is `"^(\\w+\\s?)*$"` and answers with a long sentence as its structured content. The
MCP SDK checked it with Python's backtracking `re`, which held the GIL for hours: the read never
returned and every other run on that worker stopped. Now the result is checked by a bounded
validator (RE2, activities/output_schema.py): the call returns promptly with the mismatch noted,
another run on the same worker (a real `python worker.py` process) finishes, and a pattern RE2
cannot run leaves the result marked "not checked" instead of held up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from tests.support.conditions import condition, wait_for
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.project import Project, airlock_worker
from tests.support.runs import workflow_id
from tests.support.schema_project import calls_received, said_after_refusal, schema_project
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 30.0
BACKTRACKING = r"^(\w+\s?)*$"
SENTENCE = (
    "Please move the quarterly planning meeting with the regional sales team from Tuesday morning "
    "to Thursday afternoon because several people will be travelling back from the customer "
    "conference and would otherwise miss the whole discussion about next year's travel budget."
)
INPUT = {"type": "object", "properties": {"text": {"type": "string"}}}


def _output_schema(pattern: str) -> dict[str, object]:
    return {
        "type": "object",
        "properties": {"summary": {"type": "string", "pattern": pattern}},
        "required": ["summary"],
    }


async def test_a_backtracking_output_pattern_neither_freezes_the_worker_nor_stalls_another_run(
    client: Client, tmp_path: Path
) -> None:
    tools = [
        {
            "name": "summarize",
            "inputSchema": INPUT,
            "outputSchema": _output_schema(BACKTRACKING),
            "structuredContent": {"summary": SENTENCE},
        },
        {"name": "peek", "inputSchema": INPUT},
    ]
    scripts = {
        "writer": said_after_refusal("summarize", {"text": "the meeting"}),
        "bystander": [{"tool_call": {"name": "peek", "arguments": {"text": "hello"}}}, {"message": "Peeked."}],
    }
    project = schema_project(tmp_path, tools, scripts)
    address = client.service_client.config.target_host
    # A real worker process: a regex that holds the GIL would freeze this test's loop too.
    async with worker_process(project_env(project, address)):
        writer = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="writer", input="Summarize.", requester="carol"),
            id=workflow_id("output-backtracking"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        # Started once the hostile call has been sent, so it competes with the check of its result.
        await _wait_sent(project, "summarize")
        bystander = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="bystander", input="Peek.", requester="carol"),
            id=workflow_id("output-bystander"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        written, peeked = await asyncio.wait_for(
            asyncio.gather(writer.result(), bystander.result()),
            RUN_DEADLINE_S,
        )
    assert written.output == "It ran."
    assert peeked.output == "Peeked."
    text = await history_text(writer)
    assert "does not match the tool's output schema" in text, "the result was checked, with RE2"
    assert [call["tool"] for call in calls_received(project)] == ["summarize", "peek"]
    for handle in (writer, bystander):
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)


async def test_an_output_pattern_the_linear_engine_cannot_run_leaves_the_result_not_checked(
    client: Client, tmp_path: Path
) -> None:
    lookahead = "^(?=.*[0-9])[a-z0-9 ]+$"
    tools = [
        {
            "name": "summarize",
            "inputSchema": INPUT,
            "outputSchema": _output_schema(lookahead),
            "structuredContent": {"summary": "no digits here"},
        }
    ]
    project = schema_project(tmp_path, tools, {"writer": said_after_refusal("summarize", {"text": "x"})})
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="writer", input="Summarize.", requester="carol"),
            id=workflow_id("output-lookahead"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    assert result.output == "It ran."
    text = await history_text(handle)
    assert "not checked against the tool's output schema" in text
    assert "not supported by Airlock's linear-time matcher (RE2)" in text
    assert "does not match the tool's output schema" not in text
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def _wait_sent(project: Project, tool: str) -> None:
    sent = condition(lambda: any(call["tool"] == tool for call in calls_received(project)))
    await wait_for(sent, timeout=RUN_DEADLINE_S, what=f"{tool} sent")
