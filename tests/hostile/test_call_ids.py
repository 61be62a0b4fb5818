"""A model that reuses call ids never writes without a matching decision.

A hostile model backend chooses the call ids: the id of a call that already ran (with the same
arguments, and with others), one id twice in one reply, and an empty id. Each run ends with a
typed `ModelError` at the turn that broke the rule; the only write at the tickets server is the
one a person approved, and no workflow task fails.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.hostile_model import call, install, say
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, wait_pending, workflow_id
from workflows.payloads import AgentRequest

RUN_DEADLINE_S = 30.0
T1 = {"ticket_id": "T-1"}
T2 = {"ticket_id": "T-2"}

# (turns the model plays, whether its first call is approved, writes at the server, words of the error)
CASES: dict[str, tuple[list[list[dict[str, Any]]], bool, int, list[str]]] = {
    # The SDK drops a repeated call silently and asks again with the same conversation: without
    # Airlock's check the run spun to max_turns (BudgetExceededError) and the model never heard why.
    "same id, same arguments, next turn": (
        [[call("close_ticket", T1, "c-1")], [call("close_ticket", T1, "c-1")], [say("Done.")]],
        True,
        1,
        ["reused the call id 'c-1'"],
    ),
    "same id, other arguments, next turn": (
        [[call("close_ticket", T1, "c-1")], [call("close_ticket", T2, "c-1")], [say("Done.")]],
        True,
        1,
        ["reused the call id 'c-1'"],
    ),
    "same id twice in one reply": (
        [[call("close_ticket", T1, "c-1"), call("close_ticket", T2, "c-1")], [say("Done.")]],
        False,
        0,
        ["reused a tool call ID", "in one response"],
    ),
    "empty call id": (
        [[call("close_ticket", T1, "")], [say("Done.")]],
        False,
        0,
        ["non-empty string call ID"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_reused_call_id_never_writes_without_its_approval(client: Client, tmp_path: Path, case: str) -> None:
    turns, approve_first, writes, words = CASES[case]
    project = make_project(tmp_path)
    async with airlock_worker(client, project) as activities:
        model = install(activities)
        run = workflow_id("call-ids")
        model.turns[run] = turns
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="carol"),
            id=run,
            task_queue=project.settings.task_queue,
        )
        if approve_first:
            [pending] = await wait_pending(handle)
            assert (pending["call_id"], pending["arguments"]) == ("c-1", T1)
            await handle.signal("approve", decision(pending, "alice"))
        cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
        audit = await handle.query("audit", result_type=list)
    assert cause.type == "ModelError", (cause.type, cause.message)
    assert all(word in cause.message for word in words), cause.message
    assert count_writes(project.tickets_db, "close_ticket") == writes
    # Every model turn but the one that broke the rule was played; nothing spun on.
    assert len(model.calls[run]) == len(turns) - 1
    expected = [("requested", "c-1"), ("approved", "c-1"), ("outcome", "c-1")] if approve_first else []
    assert [(e["event"], e["call_id"]) for e in audit] == expected
    if approve_first:
        assert audit[-1]["outcome"] == "ok"
        assert audit[0]["arguments_sha256"] == audit[-1]["arguments_sha256"], "what ran is what was approved"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
