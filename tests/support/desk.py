"""A decision desk for CLI tests: a worker and stack for the airlock CLI, runs started and ended."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.support.airlock_cli import Ran, address_of, airlock
from tests.support.project import Project, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentRequest, AgentResult

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}


@dataclass
class Desk:
    """A project whose approvers file lists keys made with `airlock keygen`, and the CLI to use."""

    project: Project
    home: Path
    address: str

    async def run(self, *args: str) -> Ran:
        """`airlock --address <test server> ARGS`, with this desk's keys."""
        return await airlock("--address", self.address, *args, home=self.home)


async def make_desk(tmp_path: Path, temporal_env: WorkflowEnvironment, **options: Any) -> Desk:
    """Keys for alice, bob and mallory (a person, not an approver of support) and the approvers file."""
    home = tmp_path / "home"
    entries = []
    for name in ("alice", "bob", "mallory"):
        made = await airlock("keygen", name, home=home)
        assert made.code == 0, made.describe()
        entries.append(made.out)
    approvers = tmp_path / "approvers.toml"
    approvers.write_text("".join(entries))
    project = make_project(tmp_path, script=SCRIPT, approvers_file=approvers, **options)
    return Desk(project, home, address_of(temporal_env))


async def start(client: Client, desk: Desk, prefix: str) -> WorkflowHandle[Any, AgentResult]:
    """Start a support run that will wait to close T-1."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1, it is fixed.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=desk.project.settings.task_queue,
        result_type=AgentResult,
    )


@contextlib.asynccontextmanager
async def ended(client: Client, ids: list[str]) -> AsyncIterator[list[str]]:
    """Terminate the listed runs at the end of the block if they still run: later tests list all waiting runs."""
    try:
        yield ids
    finally:
        for run_id in ids:
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(run_id).terminate("test over")
