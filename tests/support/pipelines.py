"""Pipeline runs in a test: the pending entries its status query lists."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle


async def status_pending(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The pending entries of the pipeline's `status` query."""
    status: dict[str, Any] = await handle.query("status", result_type=dict)
    return list(status["pending"])
