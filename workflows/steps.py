"""The activities the workflows call, declared by signature: name, input type, result type.

Workflow code passes these functions to `workflow.execute_activity` and friends, so a step's
input and result are type-checked where it is called, and the workflows never import the
activities' implementation (`AirlockActivities` in `activities.py`: MCP sessions, HTTP, files),
which stays outside the determinism boundary. The names are recorded in every history, so they
never change. `tests/workflows/test_steps.py` checks that each declaration and its
implementation agree.
"""

from __future__ import annotations

from temporalio import activity

from workflows.payloads import (
    ApprovalNotice,
    Directory,
    ModelCall,
    ModelReply,
    PipelineDefinition,
    PipelineLookup,
    PrepareRequest,
    RunPlan,
    ToolCall,
    ToolReply,
)


class NoImplementation(NotImplementedError):
    """A declaration was called as a function; the worker runs `AirlockActivities` instead."""


def _declared() -> NoImplementation:
    return NoImplementation("a step declaration is called by Temporal's name, never directly")


@activity.defn(name="airlock.prepare")
async def prepare(request: PrepareRequest) -> RunPlan:
    """Resolve an agent to its plan: model, instructions, tools with their policies."""
    raise _declared()


@activity.defn(name="airlock.approvers")
async def current_approvers() -> Directory | None:
    """The approvers file as it is now, or None when decisions are only asserted."""
    raise _declared()


@activity.defn(name="airlock.checkpoint_origin")
async def checkpoint_origin() -> None:
    """Prove the running run was continued as new by Airlock itself, so its checkpoint is its own."""
    raise _declared()


@activity.defn(name="airlock.pipeline")
async def pipeline(lookup: PipelineLookup) -> PipelineDefinition:
    """A pipeline definition by name, validated."""
    raise _declared()


@activity.defn(name="airlock.model")
async def model(call: ModelCall) -> ModelReply:
    """One model turn."""
    raise _declared()


@activity.defn(name="airlock.read")
async def read(call: ToolCall) -> ToolReply:
    """A read-only tool call (retried freely)."""
    raise _declared()


@activity.defn(name="airlock.write")
async def write(call: ToolCall) -> ToolReply:
    """A write tool call, sent at most once unless its tool is idempotent."""
    raise _declared()


@activity.defn(name="airlock.notify")
async def notify(notice: ApprovalNotice) -> None:
    """Tell the approval webhook that a call waits."""
    raise _declared()


STEPS = (prepare, current_approvers, checkpoint_origin, pipeline, model, read, write, notify)
