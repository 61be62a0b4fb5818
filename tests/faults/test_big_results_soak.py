"""A long agent whose reads return ~60 KB each continues as new several times and completes.

Eight parallel reads a turn, twenty turns: ~9.6 MB of results. Before the fix the run continued
as new carrying its whole conversation (each output several times over in the RunState JSON), past
Temporal's 2 MB payload limit, so the next run's first workflow task failed for ever; and fast
local reads piled into one workflow task completion. Now older outputs are cut with a marker when
the run continues (the recent ones stay whole), and each workflow task's local results stay under
a budget. The test prints the biggest payload, the biggest task completion and every history size.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory

from runtime.build import replayer
from tests.support.histories import assert_no_task_failures
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from workflows.carry import MARKER
from workflows.limits import (
    MAX_CHECKPOINT_BYTES,
    MAX_LOCAL_RESULTS_PER_TASK_BYTES,
    TEMPORAL_HISTORY_WARN_BYTES,
    TEMPORAL_PAYLOAD_BYTES,
)
from workflows.payloads import AgentRequest, AgentResult

READ_BYTES = 60_000
TURNS = 20
READS_PER_TURN = 8
MAX_HISTORY_EVENTS = 80
RUN_DEADLINE_S = 120.0
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = f"""
[servers.big]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.big_mcp"]
env = ["BIG_READ"]
cwd = "{REPO_ROOT}"
trust = "trusted"
"""
AGENT = """
name = "reader"
instructions = "You read many pages."
mcp_servers = ["big"]
max_turns = 1000
max_tool_calls = 1000

[tools]
"*" = "auto"
"""


def _payload_sizes(node: Any) -> list[int]:
    """Sizes of every payload under one history event (as `to_json` spells it)."""
    sizes: list[int] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("data"), str) and "metadata" in current:
                sizes.append(len(base64.b64decode(current["data"])))
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return sizes


def _measure(history: WorkflowHistory) -> tuple[int, int, int, int, int]:
    """History bytes, largest payload, most local result bytes one task completion recorded, input
    bytes, and timers started to end a workflow task that had no room left."""
    events = json.loads(history.to_json())["events"]
    largest = max((size for event in events for size in _payload_sizes(event)), default=0)
    per_task, current = 0, 0
    for event in events:
        kind = event.get("eventType", "")
        if kind in ("EVENT_TYPE_WORKFLOW_TASK_COMPLETED", "WorkflowTaskCompleted"):
            current = 0
        elif kind in ("EVENT_TYPE_MARKER_RECORDED", "MarkerRecorded"):
            current += sum(_payload_sizes(event))
            per_task = max(per_task, current)
    started = events[0]
    breaks = sum(
        1 for event in events if event.get("timerStartedEventAttributes", {}).get("startToFireTimeout") == "0.001s"
    )
    return len(history.to_json().encode()), largest, per_task, sum(_payload_sizes(started)), breaks


async def test_a_long_run_of_big_reads_continues_as_new_and_completes(client: Client, tmp_path: Path) -> None:
    script = {
        "reader": [
            *(
                {
                    "tool_calls": [
                        {"name": "read", "arguments": {"text": f"page {turn}-{k}"}} for k in range(READS_PER_TURN)
                    ]
                }
                for turn in range(TURNS)
            ),
            {"message": "Read them all."},
        ]
    }
    project = make_project(
        tmp_path,
        agents={"reader": AGENT},
        script=script,
        servers=SERVER,
        max_history_events=MAX_HISTORY_EVENTS,
    )
    project.environ["BIG_READ"] = str(READ_BYTES)
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="reader", input="Read every page.", requester="carol"),
            id=workflow_id("big-soak"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)

    assert result.output == "Read them all."
    assert result.tool_calls == TURNS * READS_PER_TURN
    runs = [run async for run in client.list_workflows(f'WorkflowId = "{handle.id}"')]
    measured = []
    for run in runs:
        history = await client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        assert_no_task_failures(history)
        await replayer().replay_workflow(history)
        measured.append(_measure(history))
    sizes = sorted(m[0] for m in measured)
    largest = max(m[1] for m in measured)
    per_task = max(m[2] for m in measured)
    carried = max(m[3] for m in measured)
    breaks = sum(m[4] for m in measured)
    print(
        f"{len(runs)} runs; history bytes {sizes}; largest payload {largest}; most local results in one "
        f"task {per_task}; largest run input (carried checkpoint) {carried}; tasks ended for room {breaks}"
    )
    assert len(runs) >= 3, f"the run should continue as new several times, saw {len(runs)} run(s)"
    assert largest < TEMPORAL_PAYLOAD_BYTES // 2
    assert carried < MAX_CHECKPOINT_BYTES
    assert per_task <= MAX_LOCAL_RESULTS_PER_TASK_BYTES
    assert max(sizes) < TEMPORAL_HISTORY_WARN_BYTES
    # The last turn saw the older outputs cut and the latest ones whole.
    last = [item for item in model.calls[-1].input if item.get("type") == "function_call_output"]
    assert any(MARKER in str(item.get("output")) for item in last)
    assert len(str(last[-1].get("output"))) >= READ_BYTES
