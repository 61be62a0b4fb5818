"""`AirlockPlugin` on a plain temporalio worker, and the activity list derived from the declared steps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.airlock_activities import AirlockActivities
from runtime.build import StepMismatchError, activity_list
from runtime.plugin import AirlockPlugin
from tests.support.histories import assert_replays
from tests.support.project import make_project
from tests.support.runs import workflow_id
from worker import build_activities
from workflows import steps

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "T-1 is about the login page."},
    ]
}


@pytest.mark.parametrize("sandboxed", [False, True], ids=["unsandboxed", "sandboxed"])
async def test_a_plain_worker_with_only_the_plugin_completes_a_run(
    client: Client, tmp_path: Path, sandboxed: bool
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    activities = build_activities(project.settings, environ=project.environ)
    # A client that knows nothing of Airlock: temporalio's default converter, no interceptors.
    plain = Client(client.service_client, namespace=client.namespace)
    queue = project.settings.task_queue
    worker = Worker(plain, task_queue=queue, plugins=[AirlockPlugin(activities, sandboxed=sandboxed)])
    try:
        async with worker:
            handle = await plain.start_workflow(
                "AgentWorkflow",
                {"agent": "support", "input": "What is T-1 about?", "requester": "carol"},
                id=workflow_id("plugin"),
                task_queue=queue,
            )
            result: dict[str, Any] = await asyncio.wait_for(handle.result(), 60)
    finally:
        await activities.pool.close()
    assert result["status"] == "completed"
    assert result["output"] == "T-1 is about the login page."
    assert result["tool_calls"] == 1
    await assert_replays(client.get_workflow_handle(handle.id))


def test_the_worker_registers_each_declared_step_once() -> None:
    registered = activity_list(AirlockActivities.__new__(AirlockActivities))
    names = [steps.name_of(method) for method in registered]
    assert names == list(dict.fromkeys(step.name for step in steps.TABLE))


def test_an_implementation_no_step_declares_stops_the_worker() -> None:
    class Extra(AirlockActivities):
        @activity.defn(name="airlock.undeclared")
        async def undeclared(self) -> None:
            """An activity no workflow schedules."""

    with pytest.raises(StepMismatchError, match=r"implemented but not declared \['airlock.undeclared'\]"):
        activity_list(Extra.__new__(Extra))


def test_a_declared_step_without_an_implementation_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    @activity.defn(name="airlock.unimplemented")
    async def unimplemented() -> None:
        """A step the workflows would schedule that no worker implements."""

    monkeypatch.setattr(steps, "STEPS", (*steps.STEPS, unimplemented))
    with pytest.raises(StepMismatchError, match=r"declared but not implemented \['airlock.unimplemented'\]"):
        activity_list(AirlockActivities.__new__(AirlockActivities))


def test_each_step_is_declared_with_its_options_once() -> None:
    # The options live in the table only: no workflow module builds a retry policy of its own.
    workflows = Path(steps.__file__).parent
    for path in workflows.glob("*.py"):
        if path.name != "steps.py":
            text = path.read_text()
            assert "RetryPolicy(" not in text, f"{path.name} declares a retry policy"
            assert "execute_local_activity(" not in text, f"{path.name} runs a local step itself"
