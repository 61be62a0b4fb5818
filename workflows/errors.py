"""Every failure that crosses the wire, in one place: each class is a stable `ApplicationError.type`.

All derive from `AirlockError`. Domain errors end a run (or refuse a message) for good, and their
type is the class name. Step failures are raised by activities and handled by retry policies or
workflow code; their type names were released before this base existed, are recorded in
histories and read on replay, so each keeps the `TYPE` it was first released with. The whole
vocabulary, with who raises what, is in docs/errors.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, TypeGuard

from temporalio.exceptions import ActivityError, ApplicationError


class AirlockError(ApplicationError):
    """Base of every failure Airlock sends over the wire; `TYPE` is the failure type callers see."""

    # The class name unless a subclass pins the name it was first released with.
    TYPE: ClassVar[str] = "AirlockError"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" not in cls.__dict__:
            cls.TYPE = cls.__name__

    def __init__(
        self,
        message: str,
        *details: object,
        non_retryable: bool = True,
        next_retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(
            message, *details, type=self.TYPE, non_retryable=non_retryable, next_retry_delay=next_retry_delay
        )

    @classmethod
    def is_type_of(cls, failure: BaseException | None) -> TypeGuard[ApplicationError]:
        """Whether `failure` (as it crossed the wire) is one of these."""
        return isinstance(failure, ApplicationError) and failure.type == cls.TYPE


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


class DecisionRefusedError(AirlockError):
    """A `review` or `answer` update the run refused; it changed nothing, and the message says why."""

    # Refusals crossed the wire as `InvalidInputError("refused: <reason>")` before this type: the
    # prefix stays for one release so a client that strips it keeps working (docs/compatibility.md).
    PREFIX: ClassVar[str] = "refused: "

    @classmethod
    def because(cls, reason: object) -> DecisionRefusedError:
        """The refusal of a decision for `reason`, as it crosses the wire."""
        return cls(f"{cls.PREFIX}{reason}")

    @classmethod
    def reason(cls, message: str) -> str:
        """The reason in a refusal's message, without the prefix (also that of an older worker)."""
        return message.removeprefix(cls.PREFIX)


class StepFailure(AirlockError):
    """A failure of one step, retried by its policy unless `non_retryable`; its `TYPE` never changes."""

    def __init__(self, message: str, *, non_retryable: bool = False, next_retry_delay: timedelta | None = None) -> None:
        super().__init__(message, non_retryable=non_retryable, next_retry_delay=next_retry_delay)


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
