"""Reading a run's history in a test: it replays, no task failed, its events and its payloads as text."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import _Definition

from runtime.build import replayer


@dataclass(frozen=True)
class _ReplaySandbox(SandboxedWorkflowRunner):
    """The checking sandbox without the trial run a worker makes of every workflow class first.

    A replay builds a worker, and that trial imports Airlock's modules in the sandbox once per
    workflow class: more than half of a test's replay. The replayed run itself still imports
    and runs them in the sandbox, so every check stays.
    """

    def prepare_workflow(self, defn: _Definition) -> None:
        return None


def _replayer() -> Replayer:
    """`runtime.build.replayer()`, its sandbox without the trial run."""
    config = replayer().config()
    sandbox = config["workflow_runner"]
    assert isinstance(sandbox, SandboxedWorkflowRunner), sandbox
    config["workflow_runner"] = _ReplaySandbox(restrictions=sandbox.restrictions, runner_class=sandbox.runner_class)
    return Replayer(**config)


async def assert_replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The recorded history replays in the checking sandbox without non-determinism."""
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)


def history_payloads(raw: str) -> list[bytes]:
    """Every payload in a history's JSON (`WorkflowHistory.to_json()`), decoded from base64."""
    found: list[bytes] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                found.append(base64.b64decode(node["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return found


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's history as JSON plus every payload in it decoded (`to_json` keeps them base64)."""
    raw = (await handle.fetch_history()).to_json()
    return "\n".join([raw, *(data.decode(errors="replace") for data in history_payloads(raw))])


def events_with(history: WorkflowHistory, attribute: str) -> list[Any]:
    """History events that carry `attribute` (e.g. `workflow_task_failed_event_attributes`)."""
    return [e for e in history.events if e.HasField(attribute)]


def assert_no_task_failures(history: WorkflowHistory) -> None:
    """No workflow task failed: nothing sent the workflow into a task-retry loop."""
    assert events_with(history, "workflow_task_failed_event_attributes") == []
