"""The `airlock` command line's side of Temporal: settings and client from the flags, queries, failures.

Every command that talks to a run comes through here, so a run that does not exist, a worker
that does not answer, or a run that ended badly reads the same in every command.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TerminatedError
from temporalio.exceptions import TimeoutError as TimeoutError_
from temporalio.service import RPCError, RPCStatusCode

from console.errors import CliError
from console.render import state_of
from runtime.connection import connect, with_profile
from runtime.settings import Settings


async def client_for(args: argparse.Namespace) -> Client:
    """A client for the flags' Temporal; the settings it used are kept as `args.settings`."""
    settings = settings_for(args)
    args.settings = settings
    return await connect(settings)


def settings_for(args: argparse.Namespace) -> Settings:
    """The worker's settings: `--address` and `--namespace`, then `AIRLOCK_*`, then the `temporal` profile.

    The profile (`temporalio.envconfig`: `TEMPORAL_*`, temporal.toml) is applied here, not only at
    connect, because a signature binds the namespace: it must be the one the client talks to.
    """
    try:
        settings = Settings()
    except ValidationError as err:
        first = err.errors()[0]
        raise CliError(f"bad setting AIRLOCK_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    overrides = {"temporal_address": args.address, "temporal_namespace": args.namespace}
    # Fields set by the copy count as given, so the flags win over the profile.
    return with_profile(settings.model_copy(update={k: v for k, v in overrides.items() if v is not None}))


async def query(handle: WorkflowHandle[Any, Any], name: str, wait: timedelta, result_type: Any = list) -> Any:
    """Query `name` of the run, its answer read as `result_type`; CliError saying why when it cannot answer."""
    try:
        return await handle.query(name, result_type=result_type, rpc_timeout=wait)
    except WorkflowQueryFailedError as err:
        raise CliError(f"workflow {handle.id} cannot answer {name}: {err}") from None
    except RPCError as err:
        raise rpc_error(err, handle.id, name) from err
    except ValidationError as err:
        raise CliError(f"unexpected answer to {name} from workflow {handle.id}: {err.errors()[0]['msg']}") from None


def rpc_error(err: RPCError, workflow_id: str, what: str) -> CliError:
    """`what` (a query, an update, describe) of the run failed: the CliError that says why."""
    if err.status == RPCStatusCode.NOT_FOUND:
        return CliError(f"no such workflow: {workflow_id}")
    if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
        # Queries and updates are answered by a worker; none answering is the usual reason.
        return CliError(f"workflow {workflow_id} did not answer {what} in time (is an Airlock worker running?)")
    return CliError(f"{what} of workflow {workflow_id} failed: {err.message}")


async def describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription:
    """The run's description; CliError when there is no such run or Temporal refuses."""
    try:
        return await handle.describe()
    except RPCError as err:
        raise rpc_error(err, handle.id, "describe") from None


async def run_of(handle: WorkflowHandle[Any, Any], named: str | None) -> str:
    """The run a signature binds: the one the pending entry names, else the workflow's current run."""
    return named or (await describe(handle)).run_id


async def failure(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """Why a run that ended badly ended: `UnknownAgentError: unknown agent 'nosuch' ...`; None otherwise."""
    if description.status not in (
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    ):
        return None
    handle = client.get_workflow_handle(description.id, run_id=description.run_id)
    try:
        await handle.result(follow_runs=False)
    except WorkflowFailureError as err:
        cause = err.cause
        while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
            cause = cause.cause  # the activity's or child's own failure says why
        if isinstance(cause, ApplicationError):
            return f"{cause.type or 'ApplicationError'}: {cause.message}"
        if isinstance(cause, TerminatedError):
            return f"terminated: {await _terminate_reason(client, description) or 'no reason given'}"
        if isinstance(cause, TimeoutError_):
            return f"timed out ({cause.type.name.lower() if cause.type else 'run timeout'})"
        return f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
    except RPCError as err:
        return f"{state_of(description)} (its failure could not be read: {err.message})"
    return None


async def _terminate_reason(client: Client, description: WorkflowExecutionDescription) -> str:
    """The reason whoever terminated the run gave (the last event of its history)."""
    reply = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
            maximum_page_size=1,
        )
    )
    events = reply.history.events
    return events[0].workflow_execution_terminated_event_attributes.reason if events else ""
