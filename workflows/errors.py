"""Every failure Airlock raises, in one place: each class is a stable `ApplicationError.type`.

Domain errors end a run or a step for good, and their type is the class name. Step failures are
raised by activities and handled by retry policies or workflow code; their type names are
recorded in histories and read on replay, so they are kept as they were first released.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, TypeGuard

from temporalio.exceptions import ActivityError, ApplicationError


class AirlockError(ApplicationError):
    """Base of every domain error; the class name is the failure type callers see."""

    def __init__(self, message: str, *details: object, non_retryable: bool = True) -> None:
        super().__init__(message, *details, type=type(self).__name__, non_retryable=non_retryable)

    @classmethod
    def is_type_of(cls, failure: BaseException | None) -> TypeGuard[ApplicationError]:
        """Whether `failure` (as it crossed the wire) is one of these."""
        return isinstance(failure, ApplicationError) and failure.type == cls.__name__


class InvalidInputError(AirlockError):
    """A workflow input or message payload does not match the contract."""


class UnknownAgentError(AirlockError):
    """The requested agent is not in the worker's catalog."""


class BudgetExceededError(AirlockError):
    """The run used up its turns, tool calls or tokens."""


class ApprovalTimedOutError(AirlockError):
    """An approval was not decided before its deadline and the agent says `on_timeout = "fail"`."""


class ModelError(AirlockError):
    """The model provider refused the request permanently (bad request, auth, script exhausted)."""


class ToolUnavailableError(AirlockError):
    """An MCP server could not be reached or its circuit is open."""


class ToolConflictError(AirlockError):
    """Two MCP servers of one agent offer the same tool name, so a call could not name one tool."""


class PipelineError(AirlockError):
    """A pipeline definition or one of its steps failed."""


class UnauthorizedCallError(AirlockError):
    """The worker refused to send a tool call: its own configuration and signatures do not allow it."""


class ForgedCheckpointError(AirlockError):
    """A run carries a checkpoint that did not come from Airlock's own continue-as-new."""


class PayloadTooLargeError(AirlockError):
    """What a model or MCP server sent does not fit Temporal's limits; the message names the limit."""


class StepFailure(ApplicationError):
    """A failure of one step, retried by its policy unless `non_retryable`; `TYPE` never changes."""

    TYPE: ClassVar[str]

    def __init__(self, message: str, *, non_retryable: bool = False, next_retry_delay: timedelta | None = None) -> None:
        super().__init__(message, type=self.TYPE, non_retryable=non_retryable, next_retry_delay=next_retry_delay)

    @classmethod
    def is_type_of(cls, failure: BaseException | None) -> TypeGuard[ApplicationError]:
        """Whether `failure` (as it crossed the wire) is one of these."""
        return isinstance(failure, ApplicationError) and failure.type == cls.TYPE


class ServerUnreachableError(StepFailure):
    """An MCP server could not be reached for a read or a tool listing: safe to retry."""

    TYPE = "ToolUnavailable"


class CircuitOpenError(StepFailure):
    """A server's circuit breaker is open: retrying now would only use up the retry budget."""

    TYPE = "CircuitOpen"


class ToolNotSentError(StepFailure):
    """A write was proven not to have reached its server, so the workflow may send it again."""

    TYPE = "ToolNotSent"


class OutcomeUnknownError(StepFailure):
    """A write may have reached its server; it is repeated only when the tool is idempotent."""

    TYPE = "OutcomeUnknown"


class ModelUnavailableError(StepFailure):
    """The model provider is overloaded or unreachable; retried, honouring `Retry-After`."""

    TYPE = "ModelUnavailable"


class WebhookFailedError(StepFailure):
    """The approval webhook did not accept a notice; retried, never blocking the run."""

    TYPE = "WebhookFailed"


DOMAIN_ERRORS: list[type[BaseException]] = [
    InvalidInputError,
    UnknownAgentError,
    BudgetExceededError,
    ApprovalTimedOutError,
    ModelError,
    ToolUnavailableError,
    ToolConflictError,
    PipelineError,
    PayloadTooLargeError,
    UnauthorizedCallError,
    ForgedCheckpointError,
]


def local_failure(err: ActivityError | ApplicationError) -> BaseException | None:
    """The failure an activity ended with.

    A regular activity's failure arrives wrapped in `ActivityError`; a local activity that has
    failed for good arrives as its own last `ApplicationError`, unwrapped (temporalio 1.35), so
    workflow code that only caught `ActivityError` let it fail the whole run.
    """
    return err.cause if isinstance(err, ActivityError) else err
