"""How Airlock's workflows and activities are hosted: sandbox, worker and replayer settings."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.activities import AirlockActivities
from workflows.agent_workflow import AgentWorkflow
from workflows.devserver import data_converter
from workflows.interceptors import ScrubFailures
from workflows.pipeline_workflow import PipelineWorkflow

WORKFLOWS: list[type] = [AgentWorkflow, PipelineWorkflow]

# Pure libraries the workflow code uses. Passing them through skips re-importing them into
# every workflow sandbox (a large start-up and memory cost); none of them is used for I/O or
# clock reads from workflow code.
PASSTHROUGH_MODULES = (
    "agents", "openai", "pydantic", "pydantic_core", "typing_extensions", "annotated_types",
    "jsonschema", "jsonschema_specifications", "referencing", "rpds", "attr", "attrs",
    "httpx", "httpx2", "httpcore", "httpcore2", "anyio", "sniffio", "certifi", "idna", "h11",
    "jiter", "griffe", "opentelemetry", "mcp", "mcp_types", "structlog", "websockets",
    "starlette", "sse_starlette", "multipart", "python_multipart", "jwt", "dotenv", "cryptography", "cffi",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox with Airlock's pure dependencies passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def activity_list(activities: AirlockActivities) -> Sequence[Any]:
    """Every activity a worker registers."""
    return [
        activities.prepare, activities.pipeline, activities.model, activities.read, activities.write,
        activities.notify, activities.current_approvers,
    ]


def build_worker(client: Client, task_queue: str, activities: AirlockActivities, **options: Any) -> Worker:
    """A worker that hosts every Airlock workflow and activity on `task_queue`.

    Every activity failure passes `ScrubFailures` first, so no secret reaches the history.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activity_list(activities),
        workflow_runner=workflow_runner(),
        activity_executor=ThreadPoolExecutor(4),
        # Innermost (last), so other interceptors (tracing, metrics) only ever see scrubbed failures.
        interceptors=[*options.pop("interceptors", ()), ScrubFailures(activities.redactor)],
        **options,
    )


def replayer() -> Replayer:
    """A replayer for recorded histories, configured exactly like the worker."""
    return Replayer(workflows=WORKFLOWS, workflow_runner=workflow_runner(), data_converter=data_converter())
