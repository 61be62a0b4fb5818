"""One error vocabulary: a base per side, names that say what each is, released failure types kept.

Pure: imports every product module and reads its exception classes; starts no process.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import pkgutil
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from console.decisions import send_review
from console.errors import ConsoleError, DecisionNotRecordedError
from mcp_servers.client.errors import McpClientError
from workflows import errors
from workflows.errors import AirlockError, DecisionRefusedError, InvalidInputError, StepFailure

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workflows", "activities", "runtime", "mcp_servers", "console")

# Failure types as released: recorded in histories and matched by callers, so they never change.
RELEASED_TYPES = {
    errors.InvalidInputError: "InvalidInputError",
    errors.UnknownAgentError: "UnknownAgentError",
    errors.BudgetExceededError: "BudgetExceededError",
    errors.ApprovalTimedOutError: "ApprovalTimedOutError",
    errors.ModelError: "ModelError",
    errors.ToolUnavailableError: "ToolUnavailableError",
    errors.ToolConflictError: "ToolConflictError",
    errors.PipelineError: "PipelineError",
    errors.UnauthorizedCallError: "UnauthorizedCallError",
    errors.ForgedCheckpointError: "ForgedCheckpointError",
    errors.PayloadTooLargeError: "PayloadTooLargeError",
    errors.ServerUnreachableError: "ToolUnavailable",
    errors.CircuitOpenError: "CircuitOpen",
    errors.ToolNotSentError: "ToolNotSent",
    errors.OutcomeUnknownError: "OutcomeUnknown",
    errors.ModelUnavailableError: "ModelUnavailable",
    errors.WebhookFailedError: "WebhookFailed",
}
# A step failure's type released before `ToolUnavailableError` was: the pair stays on the wire.
RELEASED_LOOK_ALIKES = {("ToolUnavailable", "ToolUnavailableError")}


@cache
def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class the product defines, by `module.name`."""
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                    found[f"{module.__name__}.{name}"] = value
    return found


def under(prefix: str) -> dict[str, type[BaseException]]:
    """The exception classes of the modules under `prefix` (a package or a module)."""
    return {k: v for k, v in exception_classes().items() if k == prefix or k.startswith(prefix + ".")}


@pytest.mark.parametrize(("cls", "released"), list(RELEASED_TYPES.items()), ids=lambda v: getattr(v, "__name__", v))
def test_released_failure_types_never_change(cls: type[AirlockError], released: str) -> None:
    raised = cls("why")
    assert (cls.TYPE, raised.type) == (released, released)
    assert cls.is_type_of(ApplicationError("why", type=released))
    assert not cls.is_type_of(ApplicationError("why", type=released + "X"))


def test_step_failures_are_retryable_and_domain_errors_are_not() -> None:
    for cls in RELEASED_TYPES:
        assert cls("why").non_retryable is not issubclass(cls, StepFailure), cls


def test_every_failure_that_crosses_the_wire_is_an_airlock_error() -> None:
    wire = {k: v for k, v in exception_classes().items() if issubclass(v, ApplicationError)}
    assert wire, "no failure types found"
    assert {k for k, v in wire.items() if not issubclass(v, AirlockError)} == set()
    # Listed once: every failure type lives in workflows/errors.py.
    assert {k for k in wire if not k.startswith("workflows.errors.")} == set()
    assert set(errors.DOMAIN_ERRORS) <= set(wire.values())


def test_every_mcp_client_exception_is_defined_once_under_one_base() -> None:
    client = under("mcp_servers.client")
    public = {k: v for k, v in client.items() if not k.rsplit(".", 1)[-1].startswith("_")}
    assert {k for k, v in public.items() if not issubclass(v, McpClientError)} == set()
    assert {k for k in public if not k.startswith("mcp_servers.client.errors.")} == set()


def test_the_mcp_client_errors_know_nothing_of_temporal_or_workflows() -> None:
    tree = ast.parse((ROOT / "mcp_servers" / "client" / "errors.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.split(".")[0] in ("temporalio", "workflows", "activities", "runtime")}


def test_every_console_exception_derives_from_the_console_base() -> None:
    console = under("console")
    assert {k for k, v in console.items() if not issubclass(v, ConsoleError)} == set()


def test_no_two_exceptions_share_a_name_or_differ_only_by_error() -> None:
    names = [k.rsplit(".", 1)[-1] for k in exception_classes()]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    # A name and the failure type of one class are one thing; a look-alike is two things.
    owner: dict[str, str] = {n: n for n in names}
    owner.update({cls.TYPE: cls.__name__ for cls in RELEASED_TYPES})
    look_alikes = {(n, n + "Error") for n in owner if n + "Error" in owner and owner[n] != owner[n + "Error"]}
    assert look_alikes == RELEASED_LOOK_ALIKES
    # No Python class is named like a failure type it is not.
    for cls in RELEASED_TYPES:
        assert cls.TYPE == cls.__name__ or cls.TYPE not in names, cls


def test_docs_name_every_error_of_the_three_families() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    families = (AirlockError, McpClientError, ConsoleError)
    named = {k.rsplit(".", 1)[-1] for k, v in exception_classes().items() if issubclass(v, families)}
    assert {n for n in named if f"`{n}`" not in text} == set()
    assert {cls.TYPE for cls in RELEASED_TYPES if f"`{cls.TYPE}`" not in text} == set()


def test_a_refusal_keeps_the_old_prefix_and_reads_back_without_it() -> None:
    refused = DecisionRefusedError.because(ValueError("unsigned decision"))
    assert (refused.type, refused.message, refused.non_retryable) == (
        "DecisionRefusedError",
        "refused: unsigned decision",
        True,
    )
    assert DecisionRefusedError.reason(refused.message) == "unsigned decision"
    # What an older worker sent: the same prefix on an `InvalidInputError`.
    older = InvalidInputError("refused: the signature has expired")
    assert DecisionRefusedError.reason(older.message) == "the signature has expired"
    assert DecisionRefusedError.reason("decision: Input should be 'approve'") == "decision: Input should be 'approve'"
    assert DecisionRefusedError not in errors.DOMAIN_ERRORS, "a refusal never ends a run"


class RefusingHandle:
    """A workflow handle whose `review` update fails with `failure`, as the run sent it."""

    def __init__(self, failure: ApplicationError) -> None:
        self.failure = failure

    async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowUpdateFailedError(self.failure)


@pytest.mark.parametrize(
    "failure",
    [
        DecisionRefusedError.because("the signature has expired"),
        # An older worker: the same text as an `InvalidInputError`.
        ApplicationError("refused: the signature has expired", type="InvalidInputError", non_retryable=True),
    ],
    ids=["this-release", "older-worker"],
)
def test_the_console_reads_a_refusal_from_this_and_an_older_worker(failure: ApplicationError) -> None:
    handle: Any = RefusingHandle(failure)
    with pytest.raises(DecisionNotRecordedError) as told:
        asyncio.run(send_review(handle, {}, timedelta(seconds=1)))
    assert str(told.value) == "the signature has expired"
