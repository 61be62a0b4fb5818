"""The Temporal server restarts (same database file, same port) while runs are in flight.

A dedicated dev server, not the session's, so stopping it disturbs no other test. At the stop
one run waits for approval and another's approved write has reached the tickets server, which
holds its answer; the worker keeps its own client, reconnects by itself, and both runs complete
with each write applied once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.conftest import (
    TICKETS_STDIO,
    airlock_worker,
    assert_replays,
    events_with,
    make_project,
    wait_for,
    wait_pending,
    workflow_id,
)
from tests.workflows.test_approvals import CLOSE_SCRIPT
from workflows import devserver
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 60.0
# Long enough that the server is stopped and started again while the write's answer is held.
REPLY_DELAY_S = "3"


async def test_runs_complete_after_the_temporal_server_restarts(tmp_path: Path) -> None:
    servers = TICKETS_STDIO.replace('env = ["TICKETS_DB"]', 'env = ["TICKETS_DB", "TICKETS_REPLY_DELAY_S"]')
    project = make_project(tmp_path, script=CLOSE_SCRIPT, servers=servers)
    project.environ["TICKETS_REPLY_DELAY_S"] = REPLY_DELAY_S
    db_file, port = tmp_path / "temporal" / "temporal.db", devserver.free_port()
    first = await devserver.start(db_file=db_file, port=port)
    running = first
    try:
        # The worker's own connection, which must outlive the first server process.
        worker_client = await Client.connect(f"127.0.0.1:{port}", data_converter=devserver.data_converter())
        async with airlock_worker(worker_client, project):
            waiting, writing = [
                await first.client.start_workflow(
                    "AgentWorkflow", AgentRequest(agent="support", input=f"Close T-1 ({name}).",
                                                  requester="carol"),
                    id=workflow_id(f"restart-{name}"), task_queue=project.settings.task_queue,
                    result_type=AgentResult,
                )
                for name in ("waiting", "writing")
            ]
            [waiting_call] = await wait_pending(waiting)
            [writing_call] = await wait_pending(writing)
            await writing.signal("approve", {"call_id": writing_call["call_id"], "approver": "alice"})

            async def write_applied() -> bool:
                return count_writes(project.tickets_db, "close_ticket") == 1
            await wait_for(write_applied, what="the approved write to reach the tickets server")
            stopped_at = datetime.now(UTC)
            await first.shutdown()
            second = running = await devserver.start(db_file=db_file, port=port)

            again = second.client
            waiting, writing = (again.get_workflow_handle(h.id, result_type=AgentResult) for h in (waiting, writing))
            assert [p["call_id"] for p in await wait_pending(waiting)] == [waiting_call["call_id"]]
            await waiting.signal("approve", {"call_id": waiting_call["call_id"], "approver": "bob"})
            results = [await asyncio.wait_for(h.result(), RUN_DEADLINE_S) for h in (waiting, writing)]
        for result in results:
            assert result.output == "Done."
            assert [(r.decision, r.outcome) for r in result.approvals] == [("approved", "ok")]
        assert count_writes(project.tickets_db, "close_ticket") == 2, "one close per run, none repeated"
        history = await writing.fetch_history()
        [completed] = events_with(history, "activity_task_completed_event_attributes")
        assert completed.event_time.ToDatetime(UTC) > stopped_at, "the write finished across the restart"
        for handle in (waiting, writing):
            await assert_replays(handle)
    finally:
        await running.shutdown()
