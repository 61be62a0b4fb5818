"""Record the histories every later version of Airlock must replay (`tests/histories/*.json`).

    python -m tests.histories.record        # from the project root, with the release's code

Run it once per release, on the released code, and commit what it writes; never re-record an
existing file to make a replay pass (see docs/compatibility.md). Each scenario runs on the real
bundled dev server, the real tickets MCP server and the scripted model.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from runtime import devserver
from tests.support.project import SUPPORT_AGENT, Project, airlock_worker, make_project
from tests.support.runs import decision
from workflows.payloads import AgentRequest

HERE = Path(__file__).resolve().parent
RELEASE = "0.2.0"
CLOSE = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}}
READ = {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}}
APPROVAL = 'approvers = ["alice", "bob"]'


async def pending(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The first pending approval, once there is one."""
    for _ in range(400):
        try:
            found = await handle.query("pending_approvals", result_type=list)
        except RPCError:  # a pipeline's child that has not started yet
            found = []
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never waited for approval")


async def approval(client: Client, project: Project) -> list[WorkflowHandle[Any, Any]]:
    """A support run: a read, a gated close approved with the `review` update, an answer."""
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1.", requester="carol"),
        id=f"history-approval-{RELEASE}",
        task_queue=project.settings.task_queue,
    )
    await handle.execute_update("review", {**decision(await pending(handle), "alice"), "decision": "approve"})
    await handle.result()
    return [handle]


async def pipeline(client: Client, project: Project) -> list[WorkflowHandle[Any, Any]]:
    """A two-step inline pipeline whose second step waits for a signal approval."""
    pipeline_id = f"history-pipeline-{RELEASE}"
    handle = await client.start_workflow(
        "PipelineWorkflow",
        {
            "steps": [{"name": "look", "agent": "reader"}, {"name": "fix", "agent": "support"}],
            "input": "T-1",
            "requester": "carol",
        },
        id=pipeline_id,
        task_queue=project.settings.task_queue,
    )
    child = client.get_workflow_handle(f"{pipeline_id}/fix")
    await child.signal("approve", decision(await pending(child), "bob"))
    await handle.result()
    return [handle, client.get_workflow_handle(f"{pipeline_id}/look"), child]


async def continued(client: Client, project: Project) -> list[WorkflowHandle[Any, Any]]:
    """A reader run long enough to continue as new (both runs are recorded)."""
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="longreader", input="Read T-1 many times.", requester="carol"),
        id=f"history-continue-as-new-{RELEASE}",
        task_queue=project.settings.task_queue,
    )
    await handle.result()
    runs: list[WorkflowHandle[Any, Any]] = []
    run_id = handle.first_execution_run_id
    while run_id:
        runs.append(client.get_workflow_handle(handle.id, run_id=run_id))
        last = (await runs[-1].fetch_history()).events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    if len(runs) < 2:
        raise RuntimeError("the long run did not continue as new")
    return runs


async def timeout(client: Client, project: Project) -> list[WorkflowHandle[Any, Any]]:
    """A run whose gated call times out and fails the run (`on_timeout = "fail"`)."""
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="strict", input="Close T-1.", requester="carol"),
        id=f"history-timeout-{RELEASE}",
        task_queue=project.settings.task_queue,
    )
    try:
        await handle.result()
    except WorkflowFailureError:
        return [handle]
    raise RuntimeError("the strict run did not time out")


SCENARIOS: dict[str, Callable[[Client, Project], Awaitable[list[WorkflowHandle[Any, Any]]]]] = {
    "approval": approval,
    "pipeline": pipeline,
    "continue-as-new": continued,
    "timeout": timeout,
}


def project_in(root: Path) -> Project:
    """Agents for every scenario, with their scripts."""

    def reader(name: str) -> str:
        return (
            f'name = "{name}"\ninstructions = "Read."\nmcp_servers = ["tickets"]\nmax_turns = 100\n'
            'max_tool_calls = 100\n[tools]\n"get_*" = "auto"\n'
        )

    agents = {
        "support": SUPPORT_AGENT,
        "reader": reader("reader"),
        "longreader": reader("longreader"),
        "strict": SUPPORT_AGENT.replace('name = "support"', 'name = "strict"')
        + 'timeout = "1s"\non_timeout = "fail"\n',
    }
    script = {
        "support": [READ, CLOSE, {"message": "Closed T-1."}],
        "reader": [READ, {"message": "T-1 is about the login page."}],
        "longreader": [*[READ] * 30, {"message": "Read it thirty times."}],
        "strict": [CLOSE, {"message": "Never reached."}],
    }
    return make_project(root, agents=agents, script=script, max_history_events=40)


async def main() -> None:
    """Run every scenario and write its histories."""
    env = await devserver.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = project_in(Path(tmp))
            async with airlock_worker(env.client, project):
                for name, scenario in SCENARIOS.items():
                    for index, handle in enumerate(await scenario(env.client, project)):
                        history = await handle.fetch_history()
                        out = HERE / f"{RELEASE}-{name}-{index}.json"
                        recorded = {"workflowId": handle.id, **json.loads(history.to_json())}
                        out.write_text(json.dumps(recorded, indent=1) + "\n")
                        written = out.relative_to(HERE.parent.parent)
                        sys.stdout.write(f"wrote {written} ({len(history.events)} events)\n")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
