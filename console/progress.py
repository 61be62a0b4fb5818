"""What a run's tool calls in flight are doing: their MCP progress, read from Temporal (shown by console.render).

The workflow knows which calls are in flight (`status.in_flight`), but progress never enters
history: it is the heartbeat of the activity running the call, which Temporal's describe
shows for pending activities. A read of a server not declared `long_running` is a local
activity and reports no progress.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

TOOL_ACTIVITIES = ("airlock.read", "airlock.write")


async def progress_by_call(client: Client, handle: WorkflowHandle[Any, Any]) -> dict[str, dict[str, Any]]:
    """The latest heartbeat details of each pending tool activity, by call id (empty if unknown)."""
    try:
        description = await handle.describe()
    except RPCError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name not in TOOL_ACTIVITIES or not pending.heartbeat_details.payloads:
            continue
        try:
            details = (await client.data_converter.decode(pending.heartbeat_details.payloads))[-1]
        except Exception:  # noqa: BLE001 - encrypted without the key here, or not ours: show no progress
            continue
        if isinstance(details, dict) and isinstance(details.get("call_id"), str):
            found[details["call_id"]] = {**details, "attempt": pending.attempt}
    return found
