"""What a person reads on a terminal is what is there: run data cannot rewrite the terminal.

A model chooses tool arguments and a server chooses its messages; both are printed by the CLI.
Here they carry `ESC[2K` (erase the line), U+009B (a C1 control sequence introducer) and U+202E
(right-to-left override). The installed `airlock` runs as a subprocess against real runs (real
Temporal, real MCP servers over stdio); its captured stdout and stderr bytes must hold none of
them raw, and must show each one escaped (`\\x1b`, `\\x9b`, `\\u202e`). `-o json` stays exact JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from console.progress import progress_by_call
from runtime.settings import PROJECT_ROOT
from tests.support.airlock_cli import AIRLOCK, address_of
from tests.support.asking import ASKING_STDIO, host_agent, wait_input
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import Project, airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult, RunStatus

HOSTILE = "done\x1b[2K\u009b2J\u202eevil"
# What must never reach the terminal raw, as bytes: ESC, U+009B and U+202E in UTF-8.
RAW = (b"\x1b", "\u009b".encode(), "\u202e".encode())
DEADLINE_S = 60.0
ESCAPES_STDIO = f"""
[servers.escapes]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.escapes_mcp"]
cwd = "{PROJECT_ROOT}"
env = ["ESCAPES_RELEASE"]
trust = "trusted"
long_running = true
"""
NOTER = 'name = "noter"\ninstructions = "You take notes."\nmcp_servers = ["escapes"]\n'


def cli_env(temporal_env: WorkflowEnvironment, project: Project, home: Path) -> dict[str, str]:
    """The environment an operator's shell gives `airlock` for this project."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    environ.update(
        {
            "HOME": str(home),
            "AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env),
            "AIRLOCK_TASK_QUEUE": project.settings.task_queue,
            "AIRLOCK_MCP_SERVERS_FILE": str(project.settings.mcp_servers_file),
            "AIRLOCK_AGENTS_DIR": str(project.settings.agents_dir),
            **project.environ,
        }
    )
    return environ


async def captured(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    """Run `airlock ARGS`; its exit status and the exact bytes of its stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


def assert_clean(*streams: bytes) -> None:
    """No raw ESC, C1 or bidi control in what the terminal would get."""
    for stream in streams:
        for raw in RAW:
            assert raw not in stream, (raw, stream.decode(errors="replace"))


async def read_until(stream: asyncio.StreamReader, seen: bytearray, wanted: Callable[[bytes], bool]) -> None:
    """Read lines of `stream` into `seen` until one satisfies `wanted` (within the deadline)."""

    async def lines() -> None:
        while True:
            line = await stream.readline()
            assert line, f"the follower ended before the line wanted: {seen.decode(errors='replace')}"
            seen.extend(line)
            if wanted(line):
                return

    await asyncio.wait_for(lines(), DEADLINE_S)


async def test_pending_show_decide_and_audit_print_a_hostile_argument_escaped(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    comment = {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": HOSTILE}}}
    project = make_project(tmp_path, script={"support": [comment, {"message": "Not commented."}]})
    env = cli_env(temporal_env, project, tmp_path / "home")
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Comment on T-1.", requester="carol"),
            id=workflow_id("escapes"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        call, sha = pending["call_id"], pending["arguments_sha256"]

        async def listed() -> bytes | None:
            code, out, err = await captured(env, "pending", "--agent", "support")
            assert code == 0, err
            return out if handle.id.encode() in out else None

        table = await wait_for(listed, timeout=DEADLINE_S, what="the call in `airlock pending`")
        assert_clean(table)
        assert b"\\x9b" in table

        code, shown, err = await captured(env, "show", handle.id)
        assert code == 0, err
        assert_clean(shown, err)
        assert b"\\x9b2J\\u202eevil" in shown and b"\\u001b[2K" in shown

        code, shown_json, err = await captured(env, "-o", "json", "show", handle.id)
        assert code == 0, err
        assert_clean(shown_json)
        assert json.loads(shown_json)["pending"][0]["arguments"]["text"] == HOSTILE  # exact JSON

        code, out, err = await captured(env, "approve", handle.id, f"x{HOSTILE}", "--sha256", sha, "--as", "bob")
        assert code == 1
        assert_clean(out, err)
        assert b"\\x1b[2K\\x9b2J\\u202eevil" in err  # the refusal names the call id, escaped

        reason = f"no{HOSTILE}"
        rejecting = ("reject", handle.id, call, "--sha256", sha, "--as", "bob", "--reason", reason)
        code, out, err = await captured(env, *rejecting)
        assert code == 0, err
        assert_clean(out, err)
        assert b"no" + b"done\\x1b[2K\\x9b2J\\u202eevil" in out

        result = await asyncio.wait_for(handle.result(), DEADLINE_S)
        assert result.status == "completed"
        code, audit, err = await captured(env, "audit", handle.id)
        assert code == 0, err
        assert_clean(audit, err)
        assert b"\\x1b[2K\\x9b2J\\u202e" in audit
    await assert_replays(handle)


async def test_run_follow_and_answer_print_a_servers_question_escaped(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The asking server puts the model's `room` into its question: "How many people for room ...?"
    book = {"tool_call": {"name": "book_room", "arguments": {"room": HOSTILE}}}
    project = make_project(
        tmp_path,
        agents={"host": host_agent(approval='approvers = ["alice"]')},
        servers=ASKING_STDIO,
        script={"host": [book, {"message": "Booked."}]},
    )
    project.environ["ASKING_LOG"] = str(tmp_path / "asking.jsonl")
    env = cli_env(temporal_env, project, tmp_path / "home")
    run_id = workflow_id("escapes-follow")
    async with airlock_worker(client, project):
        follower = await asyncio.create_subprocess_exec(
            str(AIRLOCK),
            *("run", "host", "Book the room.", "--follow", "--id", run_id, "--requester", "carol"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert follower.stdout is not None
            seen = bytearray()
            await read_until(follower.stdout, seen, lambda line: line.startswith(b"  answer: "))
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)
            pending = await wait_input(handle)
            assert pending["question"]["message"] == f"How many people for room {HOSTILE}?"  # raw in the run
            sha = pending["question"]["question_sha256"]
            code, out, err = await captured(
                env, "answer", run_id, pending["call_id"], '{"size": 2}', "--sha256", sha, "--as", "alice"
            )
            assert code == 0, err
            assert_clean(out, err)
            rest, err = await asyncio.wait_for(follower.communicate(), DEADLINE_S)
        finally:
            if follower.returncode is None:
                follower.kill()
                await follower.wait()
        assert follower.returncode == 0, (bytes(seen) + rest).decode(errors="replace")
    printed = bytes(seen) + rest
    assert_clean(printed, err)
    assert b"asks for input: How many people for room done\\x1b[2K\\x9b2J\\u202eevil?" in printed
    await assert_replays(handle)


async def test_progress_in_follow_and_show_and_mcp_call_output_are_escaped(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    note = {"tool_call": {"name": "note", "arguments": {"text": HOSTILE}}}
    project = make_project(
        tmp_path, agents={"noter": NOTER}, servers=ESCAPES_STDIO, script={"noter": [note, {"message": "Noted."}]}
    )
    release = tmp_path / "release"
    project.environ["ESCAPES_RELEASE"] = str(release)
    env = cli_env(temporal_env, project, tmp_path / "home")
    run_id = workflow_id("escapes-progress")
    async with airlock_worker(client, project):
        follower = await asyncio.create_subprocess_exec(
            str(AIRLOCK),
            *("run", "noter", "Take a note.", "--follow", "--id", run_id),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert follower.stdout is not None
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)

            async def progressed() -> bool:
                try:
                    status: RunStatus = await handle.query("status", result_type=RunStatus)
                except RPCError:
                    return False  # the follower has not started the run yet
                found = await progress_by_call(client, handle)
                return bool(status.in_flight) and any(p.get("message") == HOSTILE for p in found.values())

            await wait_for(progressed, timeout=DEADLINE_S, what="the server's progress message in the heartbeat")
            code, shown, err = await captured(env, "show", run_id)
            assert code == 0, err
            assert_clean(shown, err)
            assert b"1/2 done\\x1b[2K\\x9b2J\\u202eevil" in shown
            seen = bytearray()
            await read_until(follower.stdout, seen, lambda line: b"\\x9b2J" in line)
            release.write_text("go")
            rest, err = await asyncio.wait_for(follower.communicate(), DEADLINE_S)
        finally:
            if follower.returncode is None:
                follower.kill()
                await follower.wait()
        assert follower.returncode == 0, (bytes(seen) + rest).decode(errors="replace")
    printed = bytes(seen) + rest
    assert_clean(printed, err)
    assert b"1/2 done\\x1b[2K\\x9b2J\\u202eevil" in printed
    await assert_replays(handle)

    arguments = json.dumps({"text": HOSTILE})
    code, out, err = await captured(env, "mcp", "call", "escapes", "echo", arguments)
    assert code == 0, err
    assert_clean(out, err)
    assert out == b"done\\x1b[2K\\x9b2J\\u202eevil\n"
    code, out, err = await captured(env, "-o", "json", "mcp", "call", "escapes", "echo", arguments)
    assert code == 0, err
    assert_clean(out)
    assert json.loads(out)["content"][0]["text"] == HOSTILE
