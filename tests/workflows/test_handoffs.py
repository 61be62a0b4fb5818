"""Handoffs inside one run: each agent keeps its own tools and policy; one gate and audit for all."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult, PrepareRequest

TRIAGE = """
name = "triage"
instructions = "You read tickets and hand billing questions to billing."
mcp_servers = ["tickets"]
handoffs = ["billing"]

[tools]
"get_*" = "auto"
"*" = "deny"
"""

BILLING = """
name = "billing"
handoff_description = "Settles billing tickets."
instructions = "You settle billing tickets."
mcp_servers = ["tickets"]

[tools]
"get_*" = "auto"
close_ticket = "approve"

[approval]
approvers = ["bob"]
"""


async def test_handed_off_agent_write_waits_and_audit_names_it(client: Client, tmp_path: Path) -> None:
    script = {
        "triage": [
            {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
            {"tool_call": {"name": "transfer_to_billing", "arguments": {}}},
        ],
        "billing": [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2", "resolution": "fixed"}}},
            {"message": "Refunded and closed T-2."},
        ],
    }
    project = make_project(tmp_path, agents={"triage": TRIAGE, "billing": BILLING}, script=script)
    async with airlock_worker(client, project) as activities:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="triage", input="T-2 was charged twice.", requester="carol"),
            id=workflow_id("handoff"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        assert (pending["agent"], pending["tool"]) == ("billing", "close_ticket")
        assert count_writes(project.tickets_db, "close_ticket") == 0
        # The triage agent's approvers do not apply: billing's list says bob only.
        await handle.signal("approve", decision(pending, "alice"))
        await handle.signal("approve", decision(pending, "bob"))
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
        plan = await activities.prepare(PrepareRequest(agent="triage"))

    assert result.output == "Refunded and closed T-2."
    assert [(r.agent, r.tool, r.decided_by, r.outcome) for r in result.approvals] == [
        ("billing", "close_ticket", "bob", "ok")
    ]
    assert [(e["event"], e["agent"], e.get("actor")) for e in audit] == [
        ("requested", "billing", None),
        ("refused", "billing", "alice"),
        ("approved", "billing", "bob"),
        ("outcome", "billing", None),
    ]
    assert count_writes(project.tickets_db, "close_ticket") == 1
    # One ledger for the whole run: triage's read and billing's write; 2 + 2 model turns.
    assert result.tool_calls == 2
    assert result.usage.requests == 4
    # Each agent sees only what its own policy allows.
    assert "close_ticket" not in {t.name for t in plan.agents["triage"].tools}
    assert "close_ticket" in {t.name for t in plan.agents["billing"].tools}
    await assert_replays(handle)
