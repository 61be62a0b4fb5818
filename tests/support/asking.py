"""Input requests in a test: the asking MCP server, an agent and project using it, waiting for and answering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.support.conditions import wait_for
from tests.support.project import Project, make_project
from tests.support.runs import pending_of, workflow_id
from workflows.payloads import AgentRequest, AgentResult

ASKING_STDIO = """
[servers.asking]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.asking_mcp"]
env = ["ASKING_LOG", "ASKING_AUTHORIZED"]
trust = "trusted"
"""


def host_agent(name: str = "host", approval: str = 'approvers = ["alice", "bob"]') -> str:
    """An agent whose asking tools run without approval, so only the input requests wait."""
    return (
        f'name = "{name}"\ninstructions = "You book rooms."\nmcp_servers = ["asking"]\n'
        f'[tools]\n"*" = "auto"\n\n[approval]\n{approval}\n'
    )


def book(room: str = "A", tool: str = "book_room") -> list[dict[str, Any]]:
    """A script: call `tool` once, then finish."""
    return [
        {"tool_call": {"name": tool, "arguments": {"room": room} if tool.startswith("book") else {}}},
        {"message": "Done."},
    ]


def project_for(
    tmp_path: Path,
    script: dict[str, list[dict[str, Any]]],
    agents: dict[str, str] | None = None,
    servers: str = ASKING_STDIO,
    **settings: Any,
) -> Project:
    """A project with the asking server and `$ASKING_LOG` under `tmp_path`."""
    project = make_project(
        tmp_path, agents=agents or {"host": host_agent()}, script=script, servers=servers, **settings
    )
    project.environ["ASKING_LOG"] = str(tmp_path / "asking.jsonl")
    return project


def server_log(project: Project) -> list[dict[str, Any]]:
    """What the asking server received, one entry per call."""
    path = Path(project.environ["ASKING_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def start(client: Client, project: Project, agent: str = "host") -> WorkflowHandle[Any, AgentResult]:
    """Start a run of `agent`, requested by carol."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent=agent, input="Book room A.", requester="carol"),
        id=workflow_id("ask"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def wait_input(handle: WorkflowHandle[Any, Any], message: str | None = None) -> dict[str, Any]:
    """Wait until the run lists an input request (with `message`, if given); return it."""

    async def check() -> dict[str, Any] | None:
        found = [
            p
            for p in await pending_of(handle)
            if p.get("kind") == "input" and (message is None or p["question"]["message"] == message)
        ]
        return found[0] if found else None

    return await wait_for(check, what="an input request")


def answer(
    pending: dict[str, Any], approver: str, action: str = "accept", content: Any = None, **fields: Any
) -> dict[str, Any]:
    """An answer payload for `pending` as its person saw it."""
    payload = {
        "call_id": pending["call_id"],
        "approver": approver,
        "question_sha256": pending["question"]["question_sha256"],
        "action": action,
        **fields,
    }
    if content is not None:
        payload["content"] = content
    return payload
