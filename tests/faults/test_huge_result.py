"""An MCP server that answers with 5 MB: the model sees a cut result with a marker; history stays small."""

from __future__ import annotations

import re
from pathlib import Path

from temporalio.client import Client

from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.mcp_faults import history_bytes, stdio_tickets
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

PAD_BYTES = 5_000_000
MAX_RESULT_BYTES = 16_000
SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-3"}}},
        {"message": "Read both."},
    ]
}
MARKER = re.compile(r"\[airlock: result cut, (\d+) of (\d+) bytes not shown\]")


async def test_a_5mb_result_is_cut_with_a_marker_and_the_run_completes(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT, servers=stdio_tickets(), max_result_bytes=MAX_RESULT_BYTES)
    project.environ.update(TICKETS_FAULT=f"pad:{PAD_BYTES}", TICKETS_FAULT_TOOL="get_ticket")
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Read T-1 and T-3.", requester="carol"),
            id=workflow_id("huge"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        result = await handle.result()
    total, largest = await history_bytes(handle)
    outputs = model.tool_outputs()
    print(
        f"huge result: model saw {[len(o.encode()) for o in outputs]} bytes; "
        f"history {total} bytes, largest payload {largest} bytes"
    )
    assert result.output == "Read both."
    assert result.tool_calls == 2
    for output, title in zip(outputs, ["Login page returns 500", "Invoice PDF shows the wrong VAT"], strict=True):
        assert title in output, "the start of the result is kept"
        match = MARKER.search(output)
        assert match is not None, "the cut must be visible to the model"
        cut, whole = int(match.group(1)), int(match.group(2))
        assert whole > PAD_BYTES and cut == whole - MAX_RESULT_BYTES
        assert len(output.encode()) < MAX_RESULT_BYTES + 200
    # Both 5 MB answers together leave less than a tenth of one in history.
    assert largest < 2 * MAX_RESULT_BYTES
    assert total < 200_000
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
