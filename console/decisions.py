"""Sending one decision with the `review` update, so a refusal comes back to the sender.

The CLI and the inbox both decide this way; a refused decision changes nothing in the run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

# The gate prefixes a refused `review` with this; callers say `refused:` themselves.
REFUSED_PREFIX = "refused: "


class DecisionRefusedError(Exception):
    """The run refused the decision; the message is the run's reason, without the `refused:` prefix."""


async def send_review(handle: WorkflowHandle[Any, Any], payload: dict[str, Any], wait: timedelta) -> dict[str, Any]:
    """Send a `review` payload and return the recorded decision; `DecisionRefusedError` says why not."""
    return await send_update(handle, "review", payload, wait)


async def send_update(
    handle: WorkflowHandle[Any, Any],
    name: str,
    payload: dict[str, Any],
    wait: timedelta,
) -> dict[str, Any]:
    """Send a decision-like update (`review`, `answer`); the recorded result, or `DecisionRefusedError`."""
    try:
        record: dict[str, Any] = await handle.execute_update(name, payload, result_type=dict, rpc_timeout=wait)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise DecisionRefusedError(reason.removeprefix(REFUSED_PREFIX)) from None
    return record
