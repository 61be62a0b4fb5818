"""Projects whose agents use only the schema server (tests/support/schema_mcp.py) over stdio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.settings import PROJECT_ROOT
from tests.support.project import Project, make_project

SCHEMA_SERVER = f"""
[servers.schemas]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.schema_mcp"]
cwd = "{PROJECT_ROOT}"
env = ["SCHEMA_MCP_TOOLS", "SCHEMA_MCP_CALLS"]
trust = "untrusted"
"""
AGENT = """
name = "{name}"
instructions = "You use the schemas server."
mcp_servers = ["schemas"]

[tools]
"*" = "{policy}"

[approval]
approvers = ["alice"]
"""


def schema_project(
    root: Path,
    tools: list[dict[str, Any]],
    scripts: dict[str, list[dict[str, Any]]],
    policies: dict[str, str] | None = None,
) -> Project:
    """A project with one agent per script, each using only the schema server that offers `tools`.

    Every tool of an agent has its policy in `policies` (by agent name), "auto" when not given.
    """
    agents = {name: AGENT.format(name=name, policy=(policies or {}).get(name, "auto")) for name in scripts}
    project = make_project(root, agents=agents, script=scripts, servers=SCHEMA_SERVER)
    project.environ.update(SCHEMA_MCP_TOOLS=json.dumps(tools), SCHEMA_MCP_CALLS=str(root / "schema-calls.jsonl"))
    return project


def calls_received(project: Project) -> list[dict[str, Any]]:
    """What the schema server was asked to run, in order."""
    log = Path(project.environ["SCHEMA_MCP_CALLS"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def said_after_refusal(tool: str, arguments: dict[str, Any] | str) -> list[dict[str, Any]]:
    """One call to `tool`, then a final message that repeats what the model was told if it did not run."""
    return [
        {"tool_call": {"name": tool, "arguments": arguments}},
        {"message": "It ran.", "if_not_run": "Not run: {output}"},
    ]
