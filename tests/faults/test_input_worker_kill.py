"""A worker SIGKILLed while a run waits for an answer to its server's input request.

The wait lives in the workflow, not in an activity or an open MCP stream: after a new worker
starts, the answer is delivered with the call sent again, the run completes, and the write is
applied exactly once (the send before the kill was told `cancel`). The asking server runs over
streamable HTTP as the test's own subprocess, so it outlives the killed worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.asking import answer, host_agent, wait_input
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import make_project
from tests.support.runs import workflow_id
from tests.support.tickets_http import http_server_process
from tests.support.worker_process import project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

READY = re.compile(r"asking MCP server listening on (http://[^\s\"]+)")
RUN_DEADLINE_S = 60.0


async def test_a_worker_killed_while_waiting_for_an_answer_loses_nothing(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    log = tmp_path / "asking.jsonl"
    env = {**os.environ, "ASKING_LOG": str(log)}
    async with http_server_process(["-m", "tests.support.asking_mcp", "--http", "--port", "0"], env, READY) as (
        url,
        _pid,
        _lines,
    ):
        servers = f'[servers.asking]\ntransport = "http"\nurl = "{url}"\ntrust = "trusted"\n'
        script = {"host": [{"tool_call": {"name": "book_room", "arguments": {"room": "K"}}}, {"message": "Done."}]}
        project = make_project(tmp_path, agents={"host": host_agent()}, servers=servers, script=script)
        worker_env = project_env(project, temporal_env.client.service_client.config.target_host)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="host", input="Book room K.", requester="carol"),
            id=workflow_id("ask-kill"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        async with worker_process(worker_env) as first:
            pending = await wait_input(handle)
            first.kill()
            await first.proc.wait()
        assert first.proc.returncode == -9

        async with worker_process(worker_env):
            # The answer waits in history until a worker is there to take it.
            await handle.signal("answer", answer(pending, "alice", content={"size": 7}))
            result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)

            async def received() -> list[dict[str, object]] | None:
                lines = [json.loads(line) for line in log.read_text().splitlines()]
                return lines if len(lines) >= 2 else None

            lines = await wait_for(received, what="both sends at the server")

    assert result.status == "completed"
    assert [(line["action"], line["applied"]) for line in lines] == [("cancel", False), ("accept", True)]
    assert lines[1]["content"] == {"size": 7, "note": ""}
    assert lines[1]["key"] == f"{handle.id}/call-host-0/input-1"
    await assert_replays(handle)
