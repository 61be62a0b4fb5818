"""Helpers for MCP fault tests: registries with fault knobs, what the model saw, processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from tests.conftest import history_payloads

FAULT_VARS = ["TICKETS_FAULT", "TICKETS_FAULT_TOOL", "TICKETS_FAULT_MARKER", "TICKETS_STATS_FILE"]


def stdio_tickets(*, env: list[str] | None = None, keys: str = "") -> str:
    """`servers.toml` with the bundled tickets server over stdio, passing `env` to the child.

    Args:
        env: Worker variables the child gets besides `TICKETS_DB` (the fault knobs by default).
        keys: Extra TOML lines for the `[servers.tickets]` table (and sub-tables after them).
    """
    names = ["TICKETS_DB", *(FAULT_VARS if env is None else env)]
    return f"""
[servers.tickets]
transport = "stdio"
command = "python"
args = ["-m", "mcp_servers.tickets"]
env = {json.dumps(names)}
trust = "trusted"
idempotency_keys = true
{keys}
"""


async def history_bytes(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """The run's history size in bytes (as JSON) and the largest single payload in it."""
    raw = (await handle.fetch_history()).to_json()
    return len(raw.encode()), max((len(data) for data in history_payloads(raw)), default=0)


def child_pids(pid: int) -> list[int]:
    """Direct children of process `pid` (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.extend(int(p) for p in (task / "children").read_text().split())
    return children


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesised command name; Z is a zombie (exited).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of process `pid`, spaces between arguments."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def stats_of(path: Path) -> dict[str, int]:
    """What the tickets server wrote to its `TICKETS_STATS_FILE` (empty before the first call)."""
    return json.loads(path.read_text()) if path.exists() else {}


def kill_if_alive(pid: int) -> None:
    """SIGKILL `pid` if it still runs: a failed test must not leave a process behind."""
    if alive(pid):
        os.kill(pid, 9)
