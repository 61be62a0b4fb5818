"""The `call_details` query: a pending call with its tool, who may decide it, and the conversation."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "Closed T-1."},
    ]
}


async def test_call_details_shows_tool_deciders_and_a_bounded_conversation(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    long_input = "Close T-1. " + "x" * 5_000
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input=long_input, requester="alice"),
            id=workflow_id("details"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        details = await handle.query("call_details", pending["call_id"], result_type=dict)
        unknown = await handle.query("call_details", "no-such-call", result_type=dict | None)
        await handle.execute_update("review", decision(pending, "bob", decision="approve"))
        await handle.result()
        after = await handle.query("call_details", pending["call_id"], result_type=dict | None)
    assert details["pending"] == pending
    assert details["description"].startswith("Close a ticket")
    assert details["input_schema"]["required"] == ["ticket_id"]
    # alice requested the run and self-approval is off: only bob may decide.
    assert details["deciders"] == ["bob"] and details["allow_self_approval"] is False
    kinds = [item["kind"] for item in details["conversation"]]
    assert kinds[:3] == ["message", "function_call", "function_call_output"] and kinds[-1] == "function_call"
    first = details["conversation"][0]
    assert first["role"] == "user" and first["text"].startswith("Close T-1.") and len(first["text"]) <= 2_001
    assert "T-1" in details["conversation"][2]["text"]
    assert unknown is None and after is None
    await assert_replays(handle)
