"""Driving a run from a test: unique ids, its pending approvals, decisions on them, its failure, the CLI."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from runtime import devserver
from tests.support.conditions import wait_for


def workflow_id(prefix: str) -> str:
    """A unique workflow id."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def pending_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's pending approvals, as plain JSON."""
    return await handle.query("pending_approvals", result_type=list)


async def wait_pending(handle: WorkflowHandle[Any, Any], count: int = 1) -> list[dict[str, Any]]:
    """Wait until `count` approvals are pending."""

    async def check() -> list[dict[str, Any]] | None:
        pending = await pending_of(handle)
        return pending if len(pending) >= count else None

    return await wait_for(check, what=f"{count} pending approval(s)")


def decision(pending: dict[str, Any], approver: str, **fields: Any) -> dict[str, Any]:
    """A decision payload on `pending` as its approver saw it: call id and arguments hash, plus `fields`."""
    return {
        "call_id": pending["call_id"],
        "arguments_sha256": pending["arguments_sha256"],
        "approver": approver,
        **fields,
    }


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The typed failure a run ended with; the test fails if the run completed."""
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


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
