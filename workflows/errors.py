"""Airlock's domain errors: one flat hierarchy, each type a stable `ApplicationError.type`."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError

# Defined on the MCP side (servers.toml raises it too); one class, so one `except` catches both.
from mcp_servers.tomlfiles import ConfigError as ConfigError


class AirlockError(ApplicationError):
    """Base of every domain error; the class name is the failure type callers see."""

    def __init__(self, message: str, *details: object, non_retryable: bool = True) -> None:
        super().__init__(message, *details, type=type(self).__name__, non_retryable=non_retryable)


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


DOMAIN_ERRORS: list[type[BaseException]] = [
    InvalidInputError,
    UnknownAgentError,
    BudgetExceededError,
    ApprovalTimedOutError,
    ModelError,
    ToolUnavailableError,
    ToolConflictError,
    PipelineError,
]


def local_failure(err: ActivityError | ApplicationError) -> BaseException | None:
    """The failure an activity ended with.

    A regular activity's failure arrives wrapped in `ActivityError`; a local activity that has
    failed for good arrives as its own last `ApplicationError`, unwrapped (temporalio 1.35), so
    workflow code that only caught `ActivityError` let it fail the whole run.
    """
    return err.cause if isinstance(err, ActivityError) else err
