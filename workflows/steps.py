"""Every step the workflows schedule, declared once: its activity, timeouts, retries, local or not.

An activity is declared here by signature (name, input type, result type); `AirlockActivities`
(activities/airlock_activities.py: MCP sessions, HTTP, files) implements each declaration, outside
the determinism boundary, and the worker registers exactly the declared ones (runtime/build.py).
Each entry of the table is one way a workflow schedules a step, with all its options, so no
retry policy or timeout is written at a call site; `run_local` runs a local step and turns its
failure into what the workflow raises or returns. Names are recorded in every history, so they
never change. Runs inside the workflow: pure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.errors import AirlockError, local_failure
from workflows.payloads import (
    ApprovalNotice,
    Directory,
    ModelCall,
    ModelReply,
    PipelineDefinition,
    PipelineLookup,
    PrepareRequest,
    RuleRequest,
    Ruling,
    RunPlan,
    ToolCall,
    ToolReply,
)

In = TypeVar("In")
Out = TypeVar("Out")


class NoImplementation(NotImplementedError):
    """A declaration was called as a function; the worker runs `AirlockActivities` instead."""


def _declared() -> NoImplementation:
    return NoImplementation("a step declaration is called by Temporal's name, never directly")


# --- the activities, by signature --------------------------------------------------------------


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


@activity.defn(name="airlock.policy_rule")
async def policy_rule(request: RuleRequest) -> Ruling:
    """The worker's Cedar policies on one call: auto, approve (how many, by whom) or deny, and the rule."""
    raise _declared()


# --- how each is scheduled ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step(Generic[In, Out]):
    """One way a workflow schedules an activity, with every option it is scheduled with."""

    activity: Callable[..., Awaitable[Out]]
    local: bool
    retry: RetryPolicy
    # Start-to-close; None where it comes from the run's plan (the model's, a tool's timeout).
    timeout: timedelta | None = None
    heartbeat: timedelta | None = None
    # A step nobody waits for (a notice) is left running when its run ends.
    abandon: bool = False

    @property
    def name(self) -> str:
        """The activity's Temporal name, as histories record it."""
        return name_of(self.activity)


def name_of(declaration: Callable[..., Awaitable[Any]]) -> str:
    """The Temporal name an activity declaration (or implementation) is registered under."""
    name = activity._Definition.must_from_callable(declaration).name
    assert name is not None, "every step has a name"
    return name


def _step(
    declaration: Callable[[In], Awaitable[Out]],
    *,
    local: bool,
    retry: RetryPolicy,
    timeout: timedelta | None = None,
    heartbeat: timedelta | None = None,
    abandon: bool = False,
) -> Step[In, Out]:
    return Step(declaration, local, retry, timeout, heartbeat, abandon)


def _step_without_input(
    declaration: Callable[[], Awaitable[Out]], *, local: bool, retry: RetryPolicy, timeout: timedelta
) -> Step[None, Out]:
    return Step(declaration, local, retry, timeout)


PREPARE = _step(
    prepare,
    local=True,
    timeout=timedelta(seconds=60),
    retry=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=500)),
)
APPROVERS = _step_without_input(
    current_approvers, local=True, timeout=timedelta(seconds=10), retry=RetryPolicy(maximum_attempts=3)
)
CHECKPOINT_ORIGIN = _step_without_input(
    checkpoint_origin, local=True, timeout=timedelta(seconds=30), retry=RetryPolicy(maximum_attempts=3)
)
PIPELINE = _step(
    pipeline,
    local=True,
    timeout=timedelta(seconds=10),
    retry=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["InvalidInputError"]),
)
MODEL = _step(
    model,
    local=True,
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=8,
        non_retryable_error_types=["ModelError"],
    ),
)
_READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# Heartbeats show a long call's progress in describe and bring it cancellation.
_HEARTBEAT = timedelta(seconds=5)
READ = _step(read, local=True, retry=_READ_RETRY)
# A long-running tool's read is an ordinary activity: it heartbeats, and a worker restart resumes it.
LONG_READ = _step(read, local=False, retry=_READ_RETRY, heartbeat=_HEARTBEAT)
# A write that is not known to be idempotent is sent at most once per activity; the workflow
# re-sends it only when the activity proved nothing was sent (`ToolNotSentError`).
WRITE = _step(write, local=False, retry=RetryPolicy(maximum_attempts=1), heartbeat=_HEARTBEAT)
IDEMPOTENT_WRITE = _step(
    write,
    local=False,
    retry=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
    ),
    heartbeat=_HEARTBEAT,
)
NOTIFY = _step(
    notify,
    local=False,
    timeout=timedelta(seconds=15),
    retry=RetryPolicy(
        maximum_attempts=10, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
    ),
    abandon=True,
)
# Judged at the time of the call, on the worker's policy files; the ruling is recorded, so replay reads it.
RULE = _step(policy_rule, local=True, timeout=timedelta(seconds=10), retry=RetryPolicy(maximum_attempts=3))

TABLE: tuple[Step[Any, Any], ...] = (
    PREPARE,
    APPROVERS,
    CHECKPOINT_ORIGIN,
    PIPELINE,
    MODEL,
    READ,
    LONG_READ,
    WRITE,
    IDEMPOTENT_WRITE,
    NOTIFY,
    RULE,
)
# Every activity a worker must implement: the declarations the table schedules, each once.
STEPS: tuple[Callable[..., Awaitable[Any]], ...] = tuple(dict.fromkeys(step.activity for step in TABLE))


# --- running them ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedStep:
    """Why a step failed for good: the failure its activity ended with."""

    error: ActivityError | ApplicationError

    @property
    def cause(self) -> BaseException | None:
        """The failure the activity ended with, unwrapped."""
        return local_failure(self.error)

    @property
    def message(self) -> str:
        """The failure's own message (an `ApplicationError`'s), or its text."""
        return self.cause.message if isinstance(self.cause, ApplicationError) else str(self.cause)

    def is_(self, error: type[AirlockError]) -> bool:
        """Whether the step failed with `error`, as its type crossed the wire."""
        return error.is_type_of(self.cause)

    def __str__(self) -> str:
        return self.message


def _options(step: Step[Any, Any], timeout: timedelta | None) -> dict[str, Any]:
    start_to_close = timeout or step.timeout
    if start_to_close is None:
        raise ValueError(f"step {step.name} takes its timeout from the call, and none was given")
    return {"start_to_close_timeout": start_to_close, "retry_policy": step.retry}


def _args(arg: object) -> list[object]:
    return [] if arg is None else [arg]


async def run_local(
    step: Step[In, Out],
    arg: In,
    *,
    summary: str,
    failed: Callable[[FailedStep], Out | BaseException],
    keep: tuple[type[AirlockError], ...] = (),
    start_to_close: timedelta | None = None,
) -> Out:
    """Run a local step; when it fails for good, raise or return what its caller makes of that.

    A failure whose type is one of `keep` is raised again as that type with its message; any
    other goes to `failed`, and what it gives is raised when it is an exception, returned
    otherwise. A local activity that failed for good arrives unwrapped (see `local_failure`), so
    both forms are caught here, once. `arg` is None for a step that takes no input.
    """
    assert step.local, f"{step.name} is not a local step"
    try:
        result: Out = await workflow.execute_local_activity(
            step.activity, args=_args(arg), summary=summary, **_options(step, start_to_close)
        )
        return result
    except (ActivityError, ApplicationError) as err:
        failure = FailedStep(err)
    kept = next((error for error in keep if failure.is_(error)), None)
    if kept is not None:
        raise kept(failure.message) from None
    outcome = failed(failure)
    if isinstance(outcome, BaseException):
        raise outcome from None
    return outcome


async def run(step: Step[In, Out], arg: In, *, summary: str, start_to_close: timedelta | None = None) -> Out:
    """Run an ordinary (not local) step and wait for it; its failure arrives as `ActivityError`."""
    assert not step.local, f"{step.name} is a local step"
    result: Out = await workflow.execute_activity(
        step.activity,
        args=_args(arg),
        summary=summary,
        heartbeat_timeout=step.heartbeat,
        **_options(step, start_to_close),
    )
    return result


def start(step: Step[In, Any], arg: In, *, summary: str) -> workflow.ActivityHandle[Any]:
    """Start an ordinary step nobody waits for (it is abandoned when its run ends, if declared so)."""
    assert not step.local, f"{step.name} is a local step"
    return workflow.start_activity(
        step.activity,
        args=_args(arg),
        summary=summary,
        heartbeat_timeout=step.heartbeat,
        cancellation_type=(
            workflow.ActivityCancellationType.ABANDON if step.abandon else workflow.ActivityCancellationType.TRY_CANCEL
        ),
        **_options(step, None),
    )
