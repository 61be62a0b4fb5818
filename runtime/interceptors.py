"""Worker interceptors: every activity failure leaves the worker scrubbed of secrets, unchained.

Temporal's failure converter records an activity's error message, its stack trace and its whole
`__cause__` / `__context__` chain in the workflow history. A provider that echoes the API key in
a 401 body, or an MCP server that echoes its bearer token, would put the secret there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
import temporalio.exceptions
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from runtime.redaction import Redactor

log = structlog.get_logger(__name__)


class ScrubFailures(Interceptor):
    """Wraps every activity so that what it raises is scrubbed before Temporal records it."""

    def __init__(self, redactor: Redactor) -> None:
        """Scrub with `redactor`."""
        self.redactor = redactor

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """The scrubbing inbound interceptor around `next`."""
        return _ScrubbingInbound(next, self.redactor)


class _ScrubbingInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, redactor: Redactor) -> None:
        super().__init__(next)
        self.redactor = redactor

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            # Temporal reports cancellation itself (and tells it from failure by this type).
            raise
        except Exception as err:  # the activity's task boundary: whatever it raised leaves through here
            # The cause chain stays in the worker's (scrubbed) log only: this line is where to find it.
            info = activity.info()
            log.warning("activity_failed", activity=info.activity_type, attempt=info.attempt, exc_info=True)
            # `from None`: Temporal would serialise a `__cause__` (or unsuppressed `__context__`)
            # chain into the history, messages and stack traces included.
            raise scrubbed(err, self.redactor) from None


def scrubbed(err: Exception, redactor: Redactor) -> ApplicationError:
    """`err` as an `ApplicationError` with the same type and retry behaviour and a scrubbed message.

    String details are kept scrubbed; other details are dropped (they are serialised as they are).
    """
    if isinstance(err, ApplicationError):
        return ApplicationError(
            redactor.scrub(err.message),
            *(redactor.scrub(detail) for detail in err.details if isinstance(detail, str)),
            type=err.type or type(err).__name__,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
            category=err.category,
        )
    return ApplicationError(redactor.scrub(str(err)), type=type(err).__name__)
