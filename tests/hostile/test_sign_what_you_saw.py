"""A person signs only what they saw: a co-approver's edit never gets their signature.

The attack (issue 19, item 9): alice reviews `close_ticket` with `resolution: fixed`; bob, the
other approver of a 2-person quorum, edits it to `wont_fix`; alice's `airlock approve` then signs
whatever is pending now. Here, off a terminal, `airlock approve` without `--sha256` sends nothing
(exit 2); alice's command with the hash she was shown is refused after bob's edit, and the quorum
is not met. On a real pseudo-terminal, `airlock approve` without `--sha256` shows the call as it
stands now (the edit, its hash) and asks: `n` sends nothing, `y` sends alice's approval of it.
Real Temporal, the tickets server over stdio, keys made with `airlock keygen`, the installed CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.airlock_cli import AIRLOCK
from tests.support.desk import ended, make_desk, start
from tests.support.histories import assert_replays
from tests.support.project import SUPPORT_AGENT, airlock_worker
from tests.support.runs import pending_of, wait_pending
from workflows.arguments import arguments_sha256

QUORUM = SUPPORT_AGENT + "required = 2\n"
EDIT = {"ticket_id": "T-1", "resolution": "wont_fix"}
DEADLINE_S = 60.0


def on_terminal(args: list[str], env: dict[str, str], reply: bytes) -> tuple[int, bytes]:
    """Run `airlock ARGS` on a new pseudo-terminal; type `reply` at its `[y/N]`; its status and screen."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(AIRLOCK), *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    screen = bytearray()
    replied = False
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no end on the terminal: {screen.decode(errors='replace')}"
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and the terminal closed
                break
            if not chunk:
                break
            screen.extend(chunk)
            if not replied and b"[y/N]" in screen:
                os.write(master, reply)
                replied = True
        return proc.wait(timeout=DEADLINE_S), bytes(screen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def test_alice_signs_only_the_arguments_she_was_shown(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env, agents={"support": QUORUM})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update({"HOME": str(desk.home), "AIRLOCK_TEMPORAL_ADDRESS": desk.address})
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "saw")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        call = pending["call_id"]

        # alice views the call: what she reviews is this hash.
        shown = await desk.run("-o", "json", "show", handle.id, call)
        [viewed] = shown.json()["pending"]
        seen = viewed["arguments_sha256"]
        assert viewed["arguments"] == {"ticket_id": "T-1"}
        assert f"--sha256 {seen}" in viewed["approve_command"]

        # Off a terminal, an approve without the hash sends nothing.
        blind = await desk.run("approve", handle.id, call, "--as", "alice")
        assert blind.code == 2, blind.describe()
        assert "--sha256" in blind.err and "not on a terminal" in blind.err
        assert (await pending_of(handle))[0]["approved_by"] == []

        # bob, the co-approver, edits the call (his approval of the edited call).
        edited = await desk.run("approve", handle.id, call, "--sha256", seen, "--as", "bob", "--edit", json.dumps(EDIT))
        assert edited.code == 0, edited.describe()
        [now] = await pending_of(handle)
        assert now["arguments"] == EDIT and now["approved_by"] == ["bob"]

        # alice's command, as she was shown it: refused, and the quorum is not met.
        pasted = await desk.run("approve", handle.id, call, "--sha256", seen, "--as", "alice")
        assert pasted.code == 1, pasted.describe()
        assert pasted.err.startswith("refused: wrong arguments_sha256"), pasted.err
        [still] = await pending_of(handle)
        assert (still["approved_by"], still["arguments_sha256"]) == (["bob"], arguments_sha256(EDIT))
        assert count_writes(desk.project.tickets_db, "close_ticket") == 0

        # On a terminal alice is shown the call as it stands now, and asked: `n` sends nothing.
        argv = ["approve", handle.id, call, "--as", "alice"]
        code, screen = await asyncio.to_thread(on_terminal, argv, env, b"n\n")
        assert code == 1, screen.decode(errors="replace")
        assert b"wont_fix" in screen and arguments_sha256(EDIT).encode() in screen
        assert b"approve? [y/N]" in screen and b"nothing sent" in screen
        assert (await pending_of(handle))[0]["approved_by"] == ["bob"]

        # `y`: she approves what she saw, and the call runs as shown.
        code, screen = await asyncio.to_thread(on_terminal, argv, env, b"y\n")
        assert code == 0, screen.decode(errors="replace")
        result: Any = await asyncio.wait_for(handle.result(), DEADLINE_S)
    [record] = result.approvals
    assert record.arguments == EDIT and record.outcome == "ok"
    assert count_writes(desk.project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)
