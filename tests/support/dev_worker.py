"""The worker run as a process with --dev or --demo: a clean environment, a port holder, its exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.devserver import free_port
from tests.support.worker_process import REPO_ROOT

EXIT_DEADLINE_S = 120.0
HOLDER = (
    "import socket, sys\n"
    "sock = socket.socket()\n"
    "sock.bind(('127.0.0.1', 0))\n"
    "sock.listen()\n"
    "print(sock.getsockname()[1], flush=True)\n"
    "sys.stdin.read()\n"
)


@dataclass
class Holder:
    """Another process listening on a loopback port."""

    pid: int
    port: int


@contextlib.asynccontextmanager
async def port_holder() -> AsyncIterator[Holder]:
    """A real process that listens on a free loopback port until the block ends (its stdin closes)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        port = int(await asyncio.wait_for(proc.stdout.readline(), 15))
        yield Holder(proc.pid, port)
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """No Airlock or OpenAI settings from outside; every port on a free one unless `settings` says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_"))}
    env.update(
        {
            "AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "AIRLOCK_DEV_UI_PORT": str(free_port()),
            "AIRLOCK_INBOX_PORT": str(free_port()),
            "AIRLOCK_DATA_DIR": str(tmp_path / "data"),
            "AIRLOCK_LOG_FORMAT": "json",
            "TICKETS_DB": str(tmp_path / "tickets.db"),
            "HOME": str(tmp_path),
            **settings,
        }
    )
    return env


async def run_worker(env: dict[str, str], *args: str) -> tuple[int, str, list[dict[str, Any]]]:
    """`python worker.py ARGS` to its end: (exit status, stdout, JSON log records)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EXIT_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    logged = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    return proc.returncode, out.decode(), logged
