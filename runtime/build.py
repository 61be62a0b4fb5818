"""How Airlock's workflows and activities are hosted: the workflows, their runner, the activity list, the replayer.

Everything in `workflows/` is pure: the banned-API lint (ruff TID251) covers the folder and a
test asserts it imports nothing of Airlock's from elsewhere. Every workflow test replays its
history in Temporal's sandbox with Airlock's own modules loaded (not passed through), so the
sandbox checks each of them at run time, and checked-in histories of earlier releases replay the
same way. Production workers run workflow code without the sandbox by default: it re-imports the
workflow modules and hooks every import and payload of every run, which more than doubled the
worker's CPU per step, for checks the tests already make. `AIRLOCK_WORKFLOW_SANDBOX=true` turns
the checking sandbox on in production too. `runtime/plugin.py` bundles all of it for a worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from runtime.converter import data_converter
from workflows import steps
from workflows.agent_workflow import AgentWorkflow
from workflows.pipeline_workflow import PipelineWorkflow

WORKFLOWS: list[type] = [AgentWorkflow, PipelineWorkflow]

# Third-party packages the workflow code uses, shared with the worker instead of imported again
# into every sandbox (a large cost per run); workflow code uses no I/O, clock or randomness of
# theirs. The Agents SDK imports some of these lazily, inside functions run by workflows.
PASSTHROUGH_MODULES = (
    "agents",
    "openai",
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "re2",
    "rpds",
    "attr",
    "attrs",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "anyio",
    "sniffio",
    "certifi",
    "idna",
    "h11",
    "jiter",
    "griffe",
    "opentelemetry",
    "mcp",
    "mcp_types",
    "structlog",
    "websockets",
    "starlette",
    "sse_starlette",
    "multipart",
    "python_multipart",
    "jwt",
    "dotenv",
    "cryptography",
    "cffi",
)


def checking_sandbox() -> SandboxedWorkflowRunner:
    """Temporal's sandbox, loading Airlock's own modules so that it checks them."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def workflow_runner(*, sandboxed: bool) -> WorkflowRunner:
    """How a worker runs workflow code: in the checking sandbox, or directly (the default)."""
    return checking_sandbox() if sandboxed else UnsandboxedWorkflowRunner()


class StepMismatchError(Exception):
    """The activities a worker implements are not exactly the steps the workflows declare."""


def _implemented(activities: object) -> dict[str, Callable[..., Any]]:
    """The `@activity.defn` methods of `activities`, bound, by their Temporal names."""
    found: dict[str, Callable[..., Any]] = {}
    for attr in dir(type(activities)):
        # Looked up statically, so a property of a half-built object is never evaluated.
        member = inspect.getattr_static(type(activities), attr)
        definition = activity._Definition.from_callable(member) if callable(member) else None
        if definition is not None and definition.name is not None:
            found[definition.name] = getattr(activities, attr)
    return found


def activity_list(activities: object) -> list[Callable[..., Any]]:
    """Every activity a worker registers: `activities`' implementation of each declared step.

    Derived from `workflows/steps.py`, never kept by hand: a declared step without an
    implementation, or an implementation no step declares, stops the worker here.
    """
    declared = [steps.name_of(declaration) for declaration in steps.STEPS]
    found = _implemented(activities)
    missing = [name for name in declared if name not in found]
    extra = sorted(set(found) - set(declared))
    if missing or extra:
        raise StepMismatchError(
            f"{type(activities).__name__} does not match workflows/steps.py: "
            f"declared but not implemented {missing}, implemented but not declared {extra}"
        )
    return [found[name] for name in declared]


def replayer(converter: DataConverter | None = None, *, namespace: str = "default") -> Replayer:
    """A replayer for recorded histories, in the checking sandbox: replays are where it checks.

    Encrypted histories replay with the `converter` that holds their keys. `namespace` is the one
    the histories were recorded in: a signed decision binds it, so a replay under another name
    would refuse what the run accepted.
    """
    return Replayer(
        workflows=WORKFLOWS,
        workflow_runner=checking_sandbox(),
        data_converter=converter or data_converter(),
        namespace=namespace,
    )
