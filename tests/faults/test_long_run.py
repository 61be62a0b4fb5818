"""A 300-step run with no approvals continues as new and keeps every history short."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from runtime.build import replayer
from tests.support.histories import assert_no_task_failures
from tests.support.project import airlock_worker, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

READS = 150  # 150 reads and 151 model turns: a run of just over 300 steps
MAX_HISTORY_EVENTS = 100
# Temporal warns at 10,240 events (`limit.historyCount.warn`); a run may pass our threshold
# only by the events of the one step during which it was reached.
WARNING_THRESHOLD = 10_240

LONG_AGENT = """
name = "support"
instructions = "You read tickets."
mcp_servers = ["tickets"]
max_turns = 1000
max_tool_calls = 1000
"""


async def test_three_hundred_steps_continue_as_new(client: Client, tmp_path: Path) -> None:
    script = {
        "support": [
            *(
                {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": f"T-{1 + i % 3}"}}}
                for i in range(READS)
            ),
            {"message": "Read them all."},
        ]
    }
    project = make_project(
        tmp_path, agents={"support": LONG_AGENT}, script=script, max_history_events=MAX_HISTORY_EVENTS
    )
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Read T-1 to T-3, many times.", requester="carol"),
            id=workflow_id("long"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()

    assert result.output == "Read them all."
    assert result.tool_calls == READS
    assert result.usage.requests == READS + 1
    runs = [run async for run in client.list_workflows(f'WorkflowId = "{handle.id}"')]
    assert len(runs) >= 3, f"a 300-step run should continue as new more than once, saw {len(runs)} run(s)"
    lengths = []
    for run in runs:
        history = await client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        lengths.append(len(history.events))
        assert_no_task_failures(history)
        await replayer().replay_workflow(history)
    print(f"{len(runs)} runs, history lengths {sorted(lengths)}")
    assert max(lengths) <= MAX_HISTORY_EVENTS + 20 < WARNING_THRESHOLD, lengths
