"""`python worker.py` as a real subprocess, so tests can SIGKILL it mid-step."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.project import Project

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 30.0


@dataclass
class WorkerProcess:
    """A running worker subprocess and what it printed to stderr."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no graceful anything."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


def project_env(project: Project, address: str, **extra: str) -> dict[str, str]:
    """The environment that makes `python worker.py` run `project` against `address`."""
    settings = project.settings
    assert settings.scripted_model_file is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_"))}
    env.update(
        {
            "AIRLOCK_TEMPORAL_ADDRESS": address,
            "AIRLOCK_LOG_FORMAT": "json",
            "AIRLOCK_TASK_QUEUE": settings.task_queue,
            "AIRLOCK_AGENTS_DIR": str(settings.agents_dir),
            "AIRLOCK_MCP_SERVERS_FILE": str(settings.mcp_servers_file),
            "AIRLOCK_MODEL_PROVIDER": "scripted",
            "AIRLOCK_SCRIPTED_MODEL_FILE": str(settings.scripted_model_file),
            "AIRLOCK_DATA_DIR": str(settings.data_dir),
            **project.environ,
            **extra,
        }
    )
    return env


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str], *args: str) -> AsyncIterator[WorkerProcess]:
    """Start `python worker.py ARGS`; wait until it logs that it is ready; stop it by pid at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    running = WorkerProcess(proc)

    async def ready() -> None:
        assert proc.stderr is not None
        while line := (await proc.stderr.readline()).decode(errors="replace"):
            running.lines.append(line)
            if '"worker ready"' in line:
                return
        raise RuntimeError("worker exited before it was ready:\n" + "".join(running.lines))

    async def drain() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            running.lines.append(line.decode(errors="replace"))

    drainer: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(ready(), READY_DEADLINE_S)
        drainer = asyncio.create_task(drain())
        yield running
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drainer is not None:
            await drainer
