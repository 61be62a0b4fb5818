"""How Airlock's workflows and activities are hosted: worker, workflow runner and replayer.

The determinism boundary. Every module that runs inside a workflow is pure: the banned-API lint
(ruff TID251, scoped in pyproject.toml to every module the workflows import) refuses clocks,
randomness and the environment in them, and a test proves the scope covers them all. Every
workflow test replays its history in Temporal's sandbox with Airlock's own modules loaded (not
passed through), so the sandbox checks each of them at run time, and checked-in histories of
earlier releases replay the same way. Production workers run workflow code without the sandbox
by default: it re-imports the workflow modules and hooks every import and payload of every run,
which more than doubled the worker's CPU per step, for checks the tests already make.
`AIRLOCK_WORKFLOW_SANDBOX=true` turns the checking sandbox on in production too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.airlock_activities import AirlockActivities
from runtime.devserver import data_converter
from runtime.interceptors import ScrubFailures
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


def activity_list(activities: AirlockActivities) -> Sequence[Any]:
    """Every activity a worker registers."""
    return [
        activities.prepare,
        activities.pipeline,
        activities.model,
        activities.read,
        activities.write,
        activities.notify,
        activities.current_approvers,
        activities.checkpoint_origin,
    ]


def build_worker(
    client: Client,
    task_queue: str,
    activities: AirlockActivities,
    *,
    sandboxed: bool = False,
    **options: Any,
) -> Worker:
    """A worker that hosts every Airlock workflow and activity on `task_queue`.

    Every activity failure passes `ScrubFailures` first, so no secret reaches the history.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activity_list(activities),
        workflow_runner=workflow_runner(sandboxed=sandboxed),
        # Innermost (last), so other interceptors (tracing, metrics) only ever see scrubbed failures.
        interceptors=[*options.pop("interceptors", ()), ScrubFailures(activities.redactor)],
        **options,
    )


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
