"""Helpers for MCP fault tests: registries with fault knobs, what the model saw, processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from tests.support.histories import history_payloads

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


def hold_answer(tool: str, seconds: float) -> dict[str, str]:
    """Fault knobs that make the server run `tool`, then hold its answer for `seconds`."""
    return {"TICKETS_FAULT": f"slow:{seconds}", "TICKETS_FAULT_TOOL": tool}


def stats_of(path: Path) -> dict[str, int]:
    """What the tickets server wrote to its `TICKETS_STATS_FILE` (empty before the first call)."""
    return json.loads(path.read_text()) if path.exists() else {}
