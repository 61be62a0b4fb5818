"""Shared fixtures: one real Temporal dev server per session, and Airlock workers per test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.airlock_activities import AirlockActivities
from runtime import devserver
from runtime.build import replayer
from runtime.settings import PROJECT_ROOT, Settings
from tests.support.openai_stub import OpenAIStub
from worker import build_activities, running_worker

T = TypeVar("T")

# The registry the project ships: the tickets server over stdio, trusted, honouring keys.
TICKETS_STDIO = (PROJECT_ROOT / "mcp_servers" / "servers.toml").read_text()

SUPPORT_AGENT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]

[tools]
"get_*" = "auto"
"search_*" = "auto"

[approval]
approvers = ["alice", "bob"]
"""


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The bundled `temporal server start-dev` on a free loopback port, for the whole session."""
    env = await devserver.start()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def stubs() -> Iterator[list[OpenAIStub]]:
    """OpenAI-compatible stubs a test starts; every one is stopped at teardown."""
    started: list[OpenAIStub] = []
    try:
        yield started
    finally:
        for stub in started:
            stub.stop()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's Temporal server (pydantic JSON converter)."""
    return temporal_env.client


@dataclass
class Project:
    """A throwaway Airlock configuration: agents, servers, a scripted model, a tickets DB."""

    root: Path
    settings: Settings
    environ: dict[str, str]

    @property
    def tickets_db(self) -> Path:
        """The SQLite file the tickets server of this project writes."""
        return Path(self.environ["TICKETS_DB"])


def make_project(
    root: Path,
    *,
    agents: dict[str, str] | None = None,
    script: dict[str, list[dict[str, Any]]] | None = None,
    servers: str = TICKETS_STDIO,
    pipelines: dict[str, str] | None = None,
    **settings: Any,
) -> Project:
    """Write agent and pipeline files, `servers.toml` and a model script under `root`."""
    agents_dir = root / "agents"
    (agents_dir / "pipelines").mkdir(parents=True, exist_ok=True)
    for name, text in (agents or {"support": SUPPORT_AGENT}).items():
        (agents_dir / f"{name}.toml").write_text(textwrap.dedent(text))
    for name, text in (pipelines or {}).items():
        (agents_dir / "pipelines" / f"{name}.toml").write_text(textwrap.dedent(text))
    servers_file = root / "servers.toml"
    servers_file.write_text(textwrap.dedent(servers))
    script_file = root / "script.json"
    script_file.write_text(json.dumps(script or {}))
    options: dict[str, Any] = {
        "agents_dir": agents_dir,
        "mcp_servers_file": servers_file,
        "model_provider": "scripted",
        "scripted_model_file": script_file,
        "task_queue": f"airlock-test-{uuid.uuid4().hex[:8]}",
        "data_dir": root / "data",
    }
    options.update(settings)
    return Project(root, Settings(**options), {"TICKETS_DB": str(root / "tickets.db")})


@contextlib.asynccontextmanager
async def airlock_worker(client: Client, project: Project, **options: Any) -> AsyncIterator[AirlockActivities]:
    """Run an in-process Airlock worker for `project` until the block ends."""
    activities = build_activities(project.settings, environ=project.environ)
    async with running_worker(client, project.settings, activities, **options):
        yield activities


async def wait_for(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def pending_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's pending approvals, as plain JSON."""
    return await handle.query("pending_approvals", result_type=list)


async def wait_pending(handle: WorkflowHandle[Any, Any], count: int = 1) -> list[dict[str, Any]]:
    """Wait until `count` approvals are pending."""

    async def check() -> list[dict[str, Any]] | None:
        pending = await pending_of(handle)
        return pending if len(pending) >= count else None

    return await wait_for(check, what=f"{count} pending approval(s)")


async def assert_replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The recorded history replays without non-determinism."""
    history = await handle.fetch_history()
    await replayer().replay_workflow(history)


def history_payloads(raw: str) -> list[bytes]:
    """Every payload in a history's JSON (`WorkflowHistory.to_json()`), decoded from base64."""
    found: list[bytes] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                found.append(base64.b64decode(node["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return found


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's history as JSON plus every payload in it decoded (`to_json` keeps them base64)."""
    raw = (await handle.fetch_history()).to_json()
    return "\n".join([raw, *(data.decode(errors="replace") for data in history_payloads(raw))])


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The typed failure a run ended with; the test fails if the run completed."""
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def events_with(history: WorkflowHistory, attribute: str) -> list[Any]:
    """History events that carry `attribute` (e.g. `workflow_task_failed_event_attributes`)."""
    return [e for e in history.events if e.HasField(attribute)]


def assert_no_task_failures(history: WorkflowHistory) -> None:
    """No workflow task failed: nothing sent the workflow into a task-retry loop."""
    assert events_with(history, "workflow_task_failed_event_attributes") == []


def workflow_id(prefix: str) -> str:
    """A unique workflow id."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> str:
    """Run the bundled `temporal` CLI against the test server; return its stdout."""
    proc = await asyncio.create_subprocess_exec(
        str(devserver.temporal_binary()),
        *args,
        "--address",
        env.client.service_client.config.target_host,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"temporal {' '.join(args)} failed: {stderr.decode()}"
    return stdout.decode()


def decision(pending: dict[str, Any], approver: str, **fields: Any) -> dict[str, Any]:
    """A decision payload on `pending` as its approver saw it: call id and arguments hash, plus `fields`."""
    return {
        "call_id": pending["call_id"],
        "arguments_sha256": pending["arguments_sha256"],
        "approver": approver,
        **fields,
    }
