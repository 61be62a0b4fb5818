"""Many runs on one worker against one slow MCP server: all finish, and the server never sees more
calls at once than `max_concurrency` allows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client, WorkflowHistory

from runtime.build import replayer
from tests.support.histories import assert_no_task_failures
from tests.support.mcp_faults import hold_answer, stats_of, stdio_tickets
from tests.support.project import airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

RUNS = 200
MAX_CONCURRENCY = 4
SLOW_S = 0.05
RUNTIME_BOUND_S = 60.0
SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
        {"message": "T-2 is about the CSV export."},
    ]
}


async def test_200_runs_share_a_slow_server_within_its_concurrency_limit(client: Client, tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    servers = stdio_tickets(keys=f'timeout = "30s"\nmax_concurrency = {MAX_CONCURRENCY}')
    project = make_project(tmp_path, script=SCRIPT, servers=servers)
    project.environ.update(hold_answer("get_ticket", SLOW_S), TICKETS_STATS_FILE=str(stats_file))
    prefix = workflow_id("crowd")
    async with airlock_worker(client, project) as activities:
        model = record_model(activities)
        started = time.monotonic()
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    "AgentWorkflow",
                    AgentRequest(agent="support", input="What is T-2 about?", requester="carol"),
                    id=f"{prefix}-{n}",
                    task_queue=project.settings.task_queue,
                    result_type=AgentResult,
                )
                for n in range(RUNS)
            )
        )
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), RUNTIME_BOUND_S)
        elapsed = time.monotonic() - started
        client_peak = activities.pool.connection("tickets").peak_in_flight
    stats = stats_of(stats_file)
    outputs = model.fresh_tool_outputs()
    print(f"crowd: {RUNS} runs in {elapsed:.1f}s; server saw {stats}; client-side peak {client_peak}")
    assert [r.output for r in results] == ["T-2 is about the CSV export."] * RUNS
    # A read is a local activity: when a workflow task times out on a loaded 2-core machine, its
    # local activities run again with the retried task. Reads are safe to repeat, so that is
    # allowed; a run that got no answer is not.
    assert len(outputs) >= RUNS
    assert all("CSV export drops rows" in o and not o.startswith("Error") for o in outputs)
    # Seen by the server itself: every call arrived, and never more than the limit at once. The
    # limit was also reached, so the check is not vacuous.
    assert stats["calls"] >= RUNS
    assert stats["peak_in_flight"] == MAX_CONCURRENCY
    # 200 calls of 50 ms through 4 slots take at least 2.5 s.
    assert elapsed >= RUNS * SLOW_S / MAX_CONCURRENCY
    histories = await asyncio.gather(*(h.fetch_history() for h in handles))
    for history in histories:
        assert_no_task_failures(history)

    async def recorded() -> AsyncIterator[WorkflowHistory]:
        # Every run took the same path; a sample of them replays in the checking sandbox, which
        # loads the workflow modules afresh for each history.
        for history in histories[::10]:
            yield history

    # One replayer for all of them: a fresh one per history would cost more than the runs did.
    replayed = await replayer().replay_workflows(recorded())
    assert replayed.replay_failures == {}
