"""A stack set up as `python worker.py --dev` sets it up, on the test's Temporal server.

A worker process with the bundled agents, servers and scripted model on the `airlock` task
queue, with the dev keys and approvers file `--dev` writes (under `<dir>/.airlock/dev/`), and
the environment a person's shell has in `<dir>`: the `airlock` and `temporal` CLIs on PATH,
pointed at the test server by the documented settings (`AIRLOCK_TEMPORAL_ADDRESS`,
`TEMPORAL_ADDRESS`) instead of `localhost:7233`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from console.inbox import dev
from runtime import devserver
from runtime.settings import Settings
from tests.support.airlock_cli import address_of
from tests.support.worker_process import REPO_ROOT, WorkerProcess, worker_process


@dataclass
class DevStack:
    """The directory a person works in, their shell's environment, and the worker."""

    cwd: Path
    shell_env: dict[str, str]
    worker: WorkerProcess
    started: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def sh(self, command: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run one command line with bash in `cwd`, as pasted; (status, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=self.cwd,
            env=self.shell_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"{command!r} did not finish in {timeout} s") from None
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def sh_process(self, command: str) -> Background:
        """Start one command line with bash in `cwd`, as in a second terminal, and read it as it goes."""
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=self.cwd,
            env=self.shell_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.started.append(proc)
        return Background(proc)


@dataclass
class Background:
    """A command still running, and the lines it printed so far."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    errors: str = ""

    async def line_starting(self, prefix: str, timeout: float = 30) -> str:
        """The first stdout line that starts with `prefix` (after indentation); fails if it ends first."""
        assert self.proc.stdout is not None

        async def read() -> str:
            assert self.proc.stdout is not None
            while raw := await self.proc.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if line.strip().startswith(prefix):
                    return line.strip()
            raise AssertionError(f"it ended without a {prefix!r} line: {self.output()}")

        return await asyncio.wait_for(read(), timeout)

    async def exit_code(self, timeout: float = 30) -> int:
        """Wait for the command to end; its status (stdout and stderr kept for `output`)."""
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        self.lines += out.decode(errors="replace").splitlines()
        self.errors += err.decode(errors="replace")
        assert self.proc.returncode is not None
        return self.proc.returncode

    def output(self) -> str:
        """What it printed, for assertion messages."""
        return "\n".join(self.lines) + "\nstderr: " + self.errors


@contextlib.asynccontextmanager
async def dev_stack(env: WorkflowEnvironment, root: Path) -> AsyncIterator[DevStack]:
    """Write `root/.airlock/dev/` as `--dev` does and run a worker with it until the block ends."""
    data_dir = root / ".airlock"
    settings = dev.prepare(Settings(data_dir=data_dir))
    assert settings.approvers_file is not None
    address = address_of(env)
    home = root / "home"
    home.mkdir()
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_", "TEMPORAL_"))}
    worker_env = {
        **plain,
        "AIRLOCK_TEMPORAL_ADDRESS": address,
        "AIRLOCK_LOG_FORMAT": "json",
        "AIRLOCK_MODEL_PROVIDER": "scripted",
        "AIRLOCK_SCRIPTED_MODEL_FILE": str(REPO_ROOT / "agents" / "scripted.json"),
        "AIRLOCK_DATA_DIR": str(data_dir),
        "AIRLOCK_APPROVERS_FILE": str(settings.approvers_file),
        "TICKETS_DB": str(root / "tickets.db"),
    }
    tools = os.pathsep.join([str(Path(sys.executable).parent), str(devserver.temporal_binary().parent)])
    shell_env = {
        **plain,
        "HOME": str(home),
        "PATH": tools + os.pathsep + plain.get("PATH", ""),
        "AIRLOCK_TEMPORAL_ADDRESS": address,
        "TEMPORAL_ADDRESS": address,
    }
    async with worker_process(worker_env) as worker:
        stack = DevStack(root, shell_env, worker)
        try:
            yield stack
        finally:
            for proc in stack.started:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
