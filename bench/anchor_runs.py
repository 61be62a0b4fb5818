"""The anchor side: Temporal's own OpenAI Agents integration, in its own venv, on its own task queue.

`temporalio-openai-agents` pins an older Agents SDK than Airlock, so it cannot share Airlock's
venv: the bench makes bench/.anchor-venv once, from
bench/anchor/requirements.txt, and runs bench/anchor/worker.py with that interpreter. The bench
starts `AnchorAgentWorkflow` by name with plain JSON and awaits its plain JSON result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import durable_runs
from scenario import READER_INSTRUCTIONS, Scenario, max_turns_of, reader_agent
from temporalio.client import Client, WorkflowHandle

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".anchor-venv"
REQUIREMENTS = BENCH_DIR / "anchor" / "requirements.txt"
WORKER_SCRIPT = BENCH_DIR / "anchor" / "worker.py"
WORKFLOW = "AnchorAgentWorkflow"
INSTALL_DEADLINE_S = 600.0
# The anchor sends the whole conversation into every model activity: a K=200 run takes minutes.
RUN_DEADLINE_S = 300.0
# Written after a successful install: the hash of the requirements it was made from.
STAMP = VENV / ".airlock-bench-requirements"


def python() -> Path:
    """The anchor venv's interpreter."""
    return VENV / "bin" / "python"


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv() -> bool:
    """Make (or remake) the anchor venv when its requirements changed; True if it was installed now.

    The only download the bench does: `pip install` from the package index this machine's pip uses.
    """
    if STAMP.exists() and STAMP.read_text().strip() == _wanted() and python().exists():
        return False
    print(f"… anchor venv: {VENV} (pip install -r {REQUIREMENTS.name}, once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
    subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
        timeout=INSTALL_DEADLINE_S,
    )
    STAMP.write_text(_wanted())
    return True


def installed_versions() -> dict[str, str]:
    """Versions of the anchor venv's packages that matter to the comparison."""
    names = ("temporalio-openai-agents", "temporalio-mcp", "openai-agents", "temporalio", "mcp")
    code = (
        "import json, sys\nfrom importlib import metadata\n"
        "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run([str(python()), "-c", code, *names], check=True, capture_output=True, text=True, timeout=60)
    return dict(json.loads(out.stdout))


def worker_args(scenario: Scenario, address: str, task_queue: str) -> list[str]:
    """Flags of bench/anchor/worker.py: the same script and tickets server as the other sides."""
    return [
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--script",
        str(scenario.script_file),
        "--tickets-db",
        str(scenario.anchor_db),
        # The tickets server runs under Airlock's interpreter, as the durable worker's does.
        "--mcp-python",
        sys.executable,
    ]


def worker_env() -> dict[str, str]:
    """The anchor worker's environment: its imports come from the repository root and bench/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "OPENAI_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(durable_runs.REPO_ROOT), str(BENCH_DIR)])
    return env


@contextlib.asynccontextmanager
async def worker_process(
    scenario: Scenario, address: str, task_queue: str
) -> AsyncIterator[durable_runs.WorkerProcess]:
    """Start the anchor worker with the anchor venv, wait for its ready line, stop it."""
    async with durable_runs.worker_process(
        worker_env(),
        scenario.root / "anchor-worker.log",
        WORKER_SCRIPT,
        python=str(python()),
        args=worker_args(scenario, address, task_queue),
    ) as worker:
        yield worker


def request(k: int, prompt: str) -> dict[str, Any]:
    """The anchor workflow's JSON input for the K-read agent."""
    return {
        "agent": reader_agent(k),
        "input": prompt,
        "instructions": READER_INSTRUCTIONS,
        "max_turns": max_turns_of(k),
    }


async def run(client: Client, task_queue: str, k: int, prompt: str) -> tuple[float, WorkflowHandle[Any, Any]]:
    """Start one anchor run and await its result; returns (wall seconds, handle)."""
    began = time.perf_counter()
    handle = await client.start_workflow(
        WORKFLOW,
        request(k, prompt),
        id=f"bench-anchor-{reader_agent(k)}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
    )
    result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    if result.get("status") != "completed" or result.get("turns") != k + 1:
        raise RuntimeError(f"{handle.id}: unexpected anchor result {result}")
    return time.perf_counter() - began, handle
