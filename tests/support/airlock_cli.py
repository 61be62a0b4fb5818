"""Run the installed `airlock` console script as a subprocess, the way an operator does."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

# The console script pip installed into this venv: tests exercise the real entry point.
AIRLOCK = Path(sys.executable).parent / "airlock"


@dataclass
class Ran:
    """What one `airlock` command did."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON; the test fails with the command's stderr if it is not."""
        assert self.code == 0, self.describe()
        try:
            return json.loads(self.out)
        except json.JSONDecodeError as err:
            raise AssertionError(f"stdout is not JSON ({err}): {self.describe()}") from None

    def describe(self) -> str:
        """The command, its status and its output, for assertion messages."""
        return f"airlock {' '.join(self.args)} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


def address_of(env: WorkflowEnvironment) -> str:
    """host:port of the test Temporal server."""
    return env.client.service_client.config.target_host


async def airlock(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
    """Run `airlock ARGS` with HOME=`home` (keys live there) and only the AIRLOCK_* settings in `env`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    environ.update({"HOME": str(home), **(env or {})})
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        *args,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"airlock {' '.join(args)} did not finish in {timeout}s") from None
    assert proc.returncode is not None
    return Ran(args, proc.returncode, out.decode(), err.decode())
