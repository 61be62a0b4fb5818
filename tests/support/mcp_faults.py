"""Helpers for MCP fault tests: registries with fault knobs, what the model saw, processes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from tests.conftest import history_payloads
from workflows.activities import AirlockActivities
from workflows.models import ModelBackend
from workflows.payloads import ModelCall, ModelReply

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


@dataclass
class RecordingModel:
    """Delegates to the worker's real model backend and keeps every conversation it was sent."""

    inner: ModelBackend
    calls: list[ModelCall] = field(default_factory=list)

    async def respond(self, call: ModelCall) -> ModelReply:
        """Record `call`, then answer it with the wrapped backend."""
        self.calls.append(call)
        return await self.inner.respond(call)

    def tool_outputs(self) -> list[str]:
        """Every tool result the model was shown, once per tool call, in order."""
        seen: dict[str, str] = {}
        for call in self.calls:
            for item in call.input:
                output = item.get("output")
                if item.get("type") == "function_call_output" and isinstance(output, str):
                    seen.setdefault(str(item.get("call_id")), output)
        return list(seen.values())


    def fresh_tool_outputs(self) -> list[str]:
        """For each model turn that follows tool calls, the result it was answering (its last input).

        Unlike `tool_outputs`, this counts across runs, whose scripted call ids repeat.
        """
        return [
            str(call.input[-1].get("output")) for call in self.calls
            if call.input and call.input[-1].get("type") == "function_call_output"
        ]


def record_model(activities: AirlockActivities) -> RecordingModel:
    """Make the worker's model activity record what it is sent; returns the recorder."""
    recorder = RecordingModel(activities.model_backend)
    activities.model_backend = recorder
    return recorder


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
