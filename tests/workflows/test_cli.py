"""The `temporal` CLI (a Go client) starts runs and reads results: the payloads are plain JSON."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import temporal_cli, workflow_id

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-3"}}},
        {"message": "T-3 is open."},
    ]
}


async def test_cli_starts_run_and_reads_result(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    run_id = workflow_id("cli")
    payload = json.dumps(
        {"agent": "support", "input": "What is T-3?", "requester": "carol", "context": {"ticket": "T-3"}}
    )
    async with airlock_worker(client, project):
        await temporal_cli(
            temporal_env,
            "workflow",
            "start",
            "--type",
            "AgentWorkflow",
            "--task-queue",
            project.settings.task_queue,
            "--workflow-id",
            run_id,
            "--input",
            payload,
        )
        out = await temporal_cli(temporal_env, "workflow", "result", "--workflow-id", run_id, "-o", "json")
        status = await temporal_cli(
            temporal_env, "workflow", "query", "--workflow-id", run_id, "--name", "status", "-o", "json"
        )
    result = json.loads(out)["result"]
    assert result["status"] == "completed"
    assert result["output"] == "T-3 is open."
    assert result["tool_calls"] == 1
    assert result["usage"]["requests"] == 2
    assert json.loads(status)["queryResult"][0]["state"] == "completed"
    await assert_replays(client.get_workflow_handle(run_id))
