"""`python worker.py --demo` on a real pseudo-terminal: the walkthrough gets the screen, the log goes
to `<data dir>/demo.log` (errors still shown), and off a terminal stderr stays the JSON stream.
Pretty log lines a person reads carry a run's id, not Temporal's whole info dict, and no
`color_message`.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dev_worker import EXIT_DEADLINE_S, clean_env, port_holder, run_worker
from tests.support.worker_process import REPO_ROOT

pytestmark = pytest.mark.integration  # runs the demo as a process

# What the walkthrough prints, in order (console/demo.py); anything else on the screen is a log line.
WALKTHROUGH = (
    "worker logs: ",
    "model: scripted",
    "▶ started AgentWorkflow demo-support-",
    "⏸ paused at the approval gate: tickets.close_ticket",
    "  see what waits:",
    "✘ an unsigned approval claiming to be alice is refused",
    "✔ alice approves, signed with her key:",
    "  airlock --address",
    "■ completed: Closed T-1",
    "  close_ticket approved by alice",
    "  tool calls: 2",
    "  look again later",
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@dataclass
class Screen:
    """What a process wrote to its terminal, and how it exited."""

    code: int
    text: str

    def lines(self) -> list[str]:
        """The non-empty lines, without the terminal's carriage returns."""
        return [line for line in self.text.replace("\r", "").split("\n") if line.strip()]


def on_terminal(args: list[str], env: dict[str, str], deadline_s: float = EXIT_DEADLINE_S) -> Screen:
    """Run `args` with stdin, stdout and stderr all on one new pseudo-terminal; read it to the end."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=REPO_ROOT)
    os.close(terminal)
    chunks: list[bytes] = []
    end = time.monotonic() + deadline_s
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"{args} did not finish in {deadline_s}s: {b''.join(chunks).decode(errors='replace')}")
        return Screen(proc.wait(timeout=30), b"".join(chunks).decode(errors="replace"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


def demo_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Free ports, a data dir under `tmp_path`, and the default log format (auto), as a newcomer has."""
    env = clean_env(tmp_path, TERM="xterm", **settings)
    env.pop("AIRLOCK_LOG_FORMAT")
    return env


async def test_demo_on_a_terminal_shows_only_the_walkthrough_and_names_its_log_file(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    screen = await asyncio.to_thread(on_terminal, [sys.executable, str(REPO_ROOT / "worker.py"), "--demo"], env)
    lines = screen.lines()
    assert screen.code == 0, screen.text
    # Every line on the screen is the walkthrough's, and they come in the walkthrough's order.
    strays = [line for line in lines if not line.startswith(WALKTHROUGH)]
    assert strays == [], screen.text
    order = [next(i for i, prefix in enumerate(WALKTHROUGH) if line.startswith(prefix)) for line in lines]
    assert order == sorted(order) and set(order) == set(range(len(WALKTHROUGH))), screen.text
    assert not any(TIMESTAMP.search(line) or "temporal_workflow" in line for line in lines), screen.text

    log_file = tmp_path / "data" / "demo.log"
    assert lines[0] == f"worker logs: {log_file} (errors are shown here too)"
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    events = {r["event"] for r in records}
    # The worker's own lines and the tickets server's (a stdio child that inherits stderr).
    assert {"starting embedded Temporal", "worker ready", "approval requested", "decision refused"} <= events
    assert any(r["logger"].startswith("mcp_servers.tickets") for r in records)


async def test_demo_on_a_terminal_still_shows_the_error_that_stops_it(tmp_path: Path) -> None:
    async with port_holder() as ui:
        env = demo_env(tmp_path, AIRLOCK_DEV_UI_PORT=str(ui.port))
        screen = await asyncio.to_thread(on_terminal, [sys.executable, str(REPO_ROOT / "worker.py"), "--demo"], env)
    lines = screen.lines()
    assert screen.code == 2, screen.text
    log_file = tmp_path / "data" / "demo.log"
    [error] = [line for line in lines if "configuration error" in line]
    assert f"Temporal Web UI port {ui.port} on 127.0.0.1 is held by pid {ui.pid}" in error
    assert lines[-1] == f"the demo stopped; its log is in {log_file}"
    assert not any("[info" in line for line in lines), screen.text


async def test_demo_off_a_terminal_keeps_json_on_stderr(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    code, out, logged = await run_worker(env, "--demo")
    assert code == 0, out
    assert "■ completed:" in out and "worker logs:" not in out
    assert "worker ready" in {r["event"] for r in logged}
    assert not (tmp_path / "data" / "demo.log").exists()


async def test_pretty_log_lines_show_a_run_id_not_temporal_dicts_nor_color_message(tmp_path: Path) -> None:
    program = (
        "import logging\n"
        "from runtime import logs\n"
        "logs.configure('INFO', 'auto')\n"
        "info = {'attempt': 1, 'namespace': 'default', 'run_id': 'r-1', 'task_queue': 'airlock',"
        " 'workflow_id': 'wf-42', 'workflow_type': 'AgentWorkflow'}\n"
        "logging.getLogger('temporalio.workflow').info('approval requested', extra={'temporal_workflow': info})\n"
        "logging.getLogger('uvicorn.error').info('Uvicorn running',"
        " extra={'color_message': 'Uvicorn running on \\x1b[1mhttp://x\\x1b[0m'})\n"
    )
    env = demo_env(tmp_path)
    screen = await asyncio.to_thread(on_terminal, [sys.executable, "-c", program], env, 60)
    assert screen.code == 0, screen.text
    [approval] = [line for line in screen.lines() if "approval requested" in line]
    assert "workflow=wf-42" in approval and "temporal_workflow" not in approval and "r-1" not in approval
    [uvicorn] = [line for line in screen.lines() if "Uvicorn running" in line]
    assert "color_message" not in uvicorn and "\x1b" not in uvicorn, repr(uvicorn)
