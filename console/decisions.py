"""Sending one decision with the `review` update, so a refusal comes back to the sender.

The CLI and the inbox both decide this way; a refused decision changes nothing in the run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from console.errors import DecisionNotRecordedError
from workflows.errors import DecisionRefusedError, InvalidInputError
from workflows.payloads import ApprovalRecordView, AuditEntryView, View

ReplyT = TypeVar("ReplyT", bound=View)


async def send_review(handle: WorkflowHandle[Any, Any], payload: dict[str, Any], wait: timedelta) -> ApprovalRecordView:
    """Send a `review` payload and return the recorded decision; `DecisionNotRecordedError` says why not."""
    return await send_update(handle, "review", payload, wait, ApprovalRecordView)


async def send_answer(handle: WorkflowHandle[Any, Any], payload: dict[str, Any], wait: timedelta) -> AuditEntryView:
    """Send an `answer` payload and return the recorded answer; `DecisionNotRecordedError` says why not."""
    return await send_update(handle, "answer", payload, wait, AuditEntryView)


async def send_update(
    handle: WorkflowHandle[Any, Any],
    name: str,
    payload: dict[str, Any],
    wait: timedelta,
    result_type: type[ReplyT],
) -> ReplyT:
    """Send a decision-like update (`review`, `answer`); the recorded result, or `DecisionNotRecordedError`.

    The run refuses with `DecisionRefusedError`; a worker of the release before answered
    `InvalidInputError` with the same `refused: ` prefix, which is accepted too until that release
    is gone. The error's message is the run's reason, without the prefix.
    """
    try:
        # A view: fields a newer worker added to the record are ignored, not refused.
        record: ReplyT = await handle.execute_update(name, payload, result_type=result_type, rpc_timeout=wait)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if DecisionRefusedError.is_type_of(cause) or InvalidInputError.is_type_of(cause):
            reason = DecisionRefusedError.reason(cause.message)
        else:
            # Any other failure of the update: it recorded nothing either.
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise DecisionNotRecordedError(reason) from None
    return record
