"""A forged `child_pending` cannot turn into an approval of something else.

Anyone who can signal a pipeline can claim that its child waits for a harmless call, copying
the real call's id and even its real `arguments_sha256`. The pipeline's `status` then shows the
forged arguments, but the command printed beside them is bound to the hash of what it shows;
pasted, that decision reaches the child, which knows its real call, and is refused there. Only a
decision on the child's own `pending_approvals` runs the write.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.approvals import audit_of, wait_refused
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.pipelines import status_pending
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, pending_of, wait_pending, workflow_id
from workflows.arguments import arguments_sha256
from workflows.payloads import PipelineResult

REAL = {"ticket_id": "T-1", "resolution": "wont_fix"}
HARMLESS = {"ticket_id": "T-1", "resolution": "fixed"}
SCRIPT: dict[str, list[dict[str, Any]]] = {
    "support": [{"tool_call": {"name": "close_ticket", "arguments": REAL}}, {"message": "Done."}],
}
STEPS = [{"name": "fix", "agent": "support", "input": "Close T-1."}]


def sha256_option(command: str) -> str:
    """The `--sha256` value of a printed command, read as a shell would split it."""
    words = shlex.split(command)
    return words[words.index("--sha256") + 1]


async def test_forged_child_pending_cannot_approve_the_real_call(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with airlock_worker(client, project):
        pipeline = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": STEPS, "input": "T-1", "requester": "carol"},
            id=workflow_id("forged"),
            task_queue=project.settings.task_queue,
            result_type=PipelineResult,
        )
        [shown] = await wait_for(lambda: status_pending(pipeline), what="the child's report in the pipeline status")
        child = client.get_workflow_handle(shown["workflow_id"])
        [real] = await wait_pending(child)
        assert (shown["call_id"], shown["arguments"]) == (real["call_id"], REAL)

        # The attacker's report: the real child, call id and hash, with harmless arguments.
        forged = {**real, "arguments": HARMLESS}
        await pipeline.signal("child_pending", {"workflow_id": child.id, "pending": [forged]})

        async def forged_shown() -> dict[str, Any] | None:
            entries = await status_pending(pipeline)
            return entries[0] if entries and entries[0]["arguments"] == HARMLESS else None

        entry = await wait_for(forged_shown, what="the forged report in the pipeline status")
        assert entry is not None
        shown_hash = arguments_sha256(HARMLESS)
        assert shown_hash != real["arguments_sha256"]
        assert entry["arguments_sha256"] == shown_hash, "the hash shown is that of the arguments shown"
        assert sha256_option(entry["approve_command"]) == shown_hash
        assert sha256_option(entry["reject_command"]) == shown_hash

        # An approver pastes what the pipeline printed: the child refuses it and writes nothing.
        await child.signal("approve", decision(entry, "alice"))
        [refused] = await wait_refused(child, 1)
        assert (refused["call_id"], refused["actor"]) == (real["call_id"], "alice")
        assert refused["reason"].startswith("wrong arguments_sha256"), refused
        assert await pending_of(child) == [real]
        assert count_writes(project.tickets_db) == 0

        await child.signal("approve", decision(real, "alice"))
        result = await asyncio.wait_for(pipeline.result(), 30)
        audit = await audit_of(child)
    [step] = result.steps
    [record] = step.approvals
    assert (record.arguments, record.decided_by, record.outcome) == (REAL, "alice", "ok")
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert [e["event"] for e in audit] == ["requested", "refused", "approved", "outcome"]
    for handle in (pipeline, child):
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
