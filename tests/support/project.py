"""A throwaway Airlock project for a test (agents, servers, scripted model, tickets DB) and a worker for it."""

from __future__ import annotations

import contextlib
import json
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.airlock_activities import AirlockActivities
from runtime.settings import PROJECT_ROOT, Settings
from worker import build_activities, running_worker

# The registry the project ships: the tickets server over stdio, trusted, honouring keys.
TICKETS_STDIO = (PROJECT_ROOT / "mcp_servers" / "servers.toml").read_text()

SUPPORT_AGENT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]

[tools]
"get_*" = "auto"
"search_*" = "auto"

[approval]
approvers = ["alice", "bob"]
"""

# The support agent whose comment write runs without approval; closing still waits for alice.
AUTO_COMMENT_AGENT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]

[tools]
"get_*" = "auto"
comment_on_ticket = "auto"
close_ticket = "approve"

[approval]
approvers = ["alice"]
"""


@dataclass
class Project:
    """A throwaway Airlock configuration: agents, servers, a scripted model, a tickets DB."""

    root: Path
    settings: Settings
    environ: dict[str, str]

    @property
    def tickets_db(self) -> Path:
        """The SQLite file the tickets server of this project writes."""
        return Path(self.environ["TICKETS_DB"])


def make_project(
    root: Path,
    *,
    agents: dict[str, str] | None = None,
    script: dict[str, list[dict[str, Any]]] | None = None,
    servers: str = TICKETS_STDIO,
    pipelines: dict[str, str] | None = None,
    **settings: Any,
) -> Project:
    """Write agent and pipeline files, `servers.toml` and a model script under `root`."""
    agents_dir = root / "agents"
    (agents_dir / "pipelines").mkdir(parents=True, exist_ok=True)
    for name, text in (agents or {"support": SUPPORT_AGENT}).items():
        (agents_dir / f"{name}.toml").write_text(textwrap.dedent(text))
    for name, text in (pipelines or {}).items():
        (agents_dir / "pipelines" / f"{name}.toml").write_text(textwrap.dedent(text))
    servers_file = root / "servers.toml"
    servers_file.write_text(textwrap.dedent(servers))
    script_file = root / "script.json"
    script_file.write_text(json.dumps(script or {}))
    options: dict[str, Any] = {
        "agents_dir": agents_dir,
        "mcp_servers_file": servers_file,
        "model_provider": "scripted",
        "scripted_model_file": script_file,
        "task_queue": f"airlock-test-{uuid.uuid4().hex[:8]}",
        "data_dir": root / "data",
    }
    options.update(settings)
    return Project(root, Settings(**options), {"TICKETS_DB": str(root / "tickets.db")})


@contextlib.asynccontextmanager
async def airlock_worker(client: Client, project: Project, **options: Any) -> AsyncIterator[AirlockActivities]:
    """Run an in-process Airlock worker for `project` until the block ends."""
    activities = build_activities(project.settings, environ=project.environ)
    async with running_worker(client, project.settings, activities, **options):
        yield activities
