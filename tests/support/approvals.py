"""A support run that asks to close a ticket: its script, start, audit and refused decisions."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.support.conditions import wait_for
from tests.support.project import Project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
CLOSE_SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}


async def start(
    client: Client,
    project: Project,
    prefix: str,
    *,
    requester: str | None = "carol",
    text: str = "Close T-1, it is fixed.",
) -> WorkflowHandle[Any, AgentResult]:
    """Start a support run on the project's task queue."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input=text, requester=requester),
        id=workflow_id(prefix),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def audit_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's audit trail, as plain JSON."""
    return await handle.query("audit", result_type=list)


async def wait_refused(handle: WorkflowHandle[Any, Any], count: int) -> list[dict[str, Any]]:
    """Wait until the audit holds `count` refused attempts; return them in order."""

    async def check() -> list[dict[str, Any]] | None:
        refused = [e for e in await audit_of(handle) if e["event"] == "refused"]
        return refused if len(refused) >= count else None

    return await wait_for(check, what=f"{count} refused audit entries")
