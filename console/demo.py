"""The demo walkthrough (`python worker.py --demo`): a run pauses at the gate, an unsigned approval
is refused, alice's signed one passes, and the run finishes.

Printed on stdout for a person; the worker's logs go to stderr — or, when stdout and stderr are
both a terminal, to `<data dir>/demo.log` (errors shown on the terminal too), so the walkthrough
is not drowned in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from console import signing
from runtime.settings import PROJECT_ROOT, Settings
from workflows.payloads import AgentRequest, AgentResult, PendingApprovalView, RunStatus

SCRIPT = PROJECT_ROOT / "agents" / "scripted.json"
GATE_DEADLINE_S = 60.0
LOG_FILE = "demo.log"


@dataclass
class DemoLog:
    """Where the demo's log went instead of the terminal, and the terminal (a duplicated fd)."""

    path: Path
    terminal: int

    def stream(self) -> TextIO:
        """The terminal, for the lines a person must still see there (errors)."""
        return os.fdopen(os.dup(self.terminal), "w", buffering=1, closefd=True)

    def tell(self, line: str) -> None:
        """One line on the terminal."""
        os.write(self.terminal, (line + "\n").encode())


def logs_to_file(settings: Settings) -> DemoLog | None:
    """On a terminal, send everything written to stderr to `<data dir>/demo.log` from here on.

    The redirect is of file descriptor 2, so it takes every writer at once: the worker's log,
    Temporal core's and the dev server's lines, and the stdio MCP servers, which inherit it.
    Off a terminal nothing changes: stderr stays the documented JSON stream.
    """
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None
    path = settings.data_dir / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(target, 2)
    finally:
        os.close(target)
    say(f"worker logs: {path} (errors are shown here too)")
    return DemoLog(path, terminal)


def prepare(settings: Settings) -> Settings:
    """The demo's settings: the offline scripted model, and alice's key in a demo approvers file."""
    directory = settings.data_dir / "demo"
    key_file = directory / "alice.key"
    if not key_file.exists():
        signing.save_private_key(signing.generate_key(), key_file)
    approvers = directory / "approvers.toml"
    approvers.write_text(
        "# Written by `python worker.py --demo`: alice signs with .airlock/demo/alice.key.\n"
        + signing.toml_entry("alice", signing.load_private_key(key_file))
        + "\n"
    )
    return settings.model_copy(
        update={
            "model_provider": "scripted",
            "scripted_model_file": SCRIPT,
            "approvers_file": approvers,
        }
    )


def say(line: str) -> None:
    """Print a line of the walkthrough (stdout is the person's, logs go to stderr)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def walkthrough(client: Client, settings: Settings) -> None:
    """Run the support agent to its gate, try an unsigned approval, approve signed, show the result."""
    say(f"model: scripted ({SCRIPT.relative_to(PROJECT_ROOT)}), offline")
    workflow_id = f"demo-support-{int(time.time())}"
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Ticket T-1 is fixed; please close it.", requester="demo"),
        id=workflow_id,
        task_queue=settings.task_queue,
        result_type=AgentResult,
    )
    say(f"\n▶ started AgentWorkflow {workflow_id} (agent: support)")
    try:
        await _gate_and_decide(handle, settings)
    finally:
        await _end_unfinished(handle)
    say(
        "  look again later (same database): "
        + _dev_command(settings)
        + "; then, in another terminal: "
        + shlex.join([*_airlock(settings), "audit", workflow_id])
        + "\n"
    )


def _dev_command(settings: Settings) -> str:
    """`python worker.py --dev` with the settings that put it on the demo's server and database."""
    changed = {
        name: value
        for name, value in (
            ("AIRLOCK_TEMPORAL_ADDRESS", settings.temporal_address),
            ("AIRLOCK_DATA_DIR", str(settings.data_dir)),
            ("AIRLOCK_DEV_UI_PORT", str(settings.dev_ui_port)),
        )
        if value != str(Settings.model_fields[name.removeprefix("AIRLOCK_").lower()].default)
    }
    return " ".join([*(f"{name}={shlex.quote(value)}" for name, value in changed.items()), "python worker.py --dev"])


def _airlock(settings: Settings) -> list[str]:
    """`airlock` with `--address` when the demo's server is not where the CLI looks by default."""
    default = Settings.model_fields["temporal_address"].default
    return ["airlock"] if settings.temporal_address == default else ["airlock", "--address", settings.temporal_address]


async def _end_unfinished(handle: WorkflowHandle[object, AgentResult]) -> None:
    """Terminate the demo's run if it is still going (an error, Ctrl-C): nothing is left waiting."""
    with contextlib.suppress(RPCError):
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("the demo ended before its run did")
            say(f"  terminated {handle.id}: the demo ended before its run did")


async def _gate_and_decide(handle: WorkflowHandle[object, AgentResult], settings: Settings) -> None:
    """Wait at the gate, show an unsigned approval refused, approve signed, print the result."""
    workflow_id = handle.id
    call = await _wait_for_gate(handle)
    say(f"⏸ paused at the approval gate: {call.server}.{call.tool} {json.dumps(call.arguments)}")
    say(
        "  see what waits:  airlock pending   (or in a browser: `python worker.py --dev` serves the inbox, "
        "http://localhost:8234)"
    )

    unsigned = {
        "call_id": call.call_id,
        "approver": "alice",
        "arguments_sha256": call.arguments_sha256,
        "decision": "approve",
    }
    try:
        await handle.execute_update("review", unsigned, result_type=dict)
        raise SystemExit("an unsigned approval was accepted: the demo's approvers file is not in force")
    except WorkflowUpdateFailedError as err:
        reason = err.cause.message if isinstance(err.cause, ApplicationError) else str(err.cause)
        say(f"✘ an unsigned approval claiming to be alice is {reason}")

    key_file = settings.data_dir / "demo" / "alice.key"
    command = [
        *_airlock(settings),
        "approve",
        workflow_id,
        call.call_id,
        "--sha256",
        call.arguments_sha256,
        "--as",
        "alice",
        "--key",
        str(key_file),
    ]
    say("✔ alice approves, signed with her key:\n  " + shlex.join(command))
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "airlock"),
        "--address",
        settings.temporal_address,
        *command[command.index("approve") :],
        stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, "AIRLOCK_LOG_FORMAT": "json"},
    )
    if await proc.wait() != 0:
        raise SystemExit("`airlock approve` could not approve the call")
    result = await handle.result()
    say(f"■ completed: {result.output}")
    for record in result.approvals:
        say(f"  {record.tool} {record.decision} by {record.decided_by} ({record.identity}) → outcome {record.outcome}")
    say(f"  tool calls: {result.tool_calls}, model requests: {result.usage.requests}")


async def _wait_for_gate(handle: WorkflowHandle[object, AgentResult]) -> PendingApprovalView:
    deadline = time.monotonic() + GATE_DEADLINE_S
    status = RunStatus(state="starting", agent="support", turn=0, tool_calls=0)
    while time.monotonic() < deadline:
        status = await handle.query("status", result_type=RunStatus)
        if status.state == "awaiting_approval":
            pending: list[PendingApprovalView] = await handle.query(
                "pending_approvals", result_type=list[PendingApprovalView]
            )
            if pending:
                return pending[0]
        if status.state in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)  # polling a query for the walkthrough
    await handle.terminate("the demo's run did not reach its approval gate")
    raise SystemExit(f"the run did not reach its approval gate (state: {status.state})")
