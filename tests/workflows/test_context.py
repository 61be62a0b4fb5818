"""A run's `context` reaches the model with the input; an oversized one is refused at the start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, workflow_id
from workflows.payloads import MAX_CONTEXT_CHARS, AgentRequest, AgentResult

SCRIPT = {"support": [{"message": "T-3 is open."}]}
RUN_DEADLINE_S = 60.0


async def test_the_model_is_told_the_context_as_json(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    context = {"ticket": "T-3", "customer": {"name": "Ada", "tier": "gold"}}
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What is T-3?", requester="carol", context=context),
            id=workflow_id("context"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        await assert_replays(handle)
    assert result.output == "T-3 is open."
    [first, *_] = spy.calls[0].input
    told = str(first["content"])
    assert told.startswith("What is T-3?\n\nContext from the requester (JSON):\n")
    assert json.loads(told.split("(JSON):\n", 1)[1]) == context


async def test_a_run_without_context_is_told_only_its_input(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="What is T-3?", requester="carol"),
            id=workflow_id("no-context"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    assert spy.calls[0].input[0]["content"] == "What is T-3?"


async def test_an_oversized_context_fails_the_run_before_any_model_call(client: Client, tmp_path: Path) -> None:
    # A requester could otherwise make every model turn carry megabytes.
    project = make_project(tmp_path, script=SCRIPT)
    blob = "x" * (MAX_CONTEXT_CHARS + 1)
    payload = {"agent": "support", "input": "hi", "requester": "carol", "context": {"blob": blob}}
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            payload,
            id=workflow_id("big-context"),
            task_queue=project.settings.task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        failure = await failure_of(handle)
    assert failure.type == "InvalidInputError"
    assert f"at most {MAX_CONTEXT_CHARS}" in failure.message
    assert spy.calls == []
