"""Virtual time on the bundled dev server: runs that skip their timers, and a run moved ahead by a duration.

The dev server (Temporal Server 1.32) skips time per execution when its dynamic config allows it
(`SERVER_ARGS`). No test server is downloaded: `WorkflowEnvironment.start_time_skipping` would fetch
one at run time, which an offline machine cannot. A run started with time skipping jumps to its next
timer whenever no activity or child is in flight (an approval timeout fires at once); any run can
also be fast-forwarded by a duration, after which its clock runs at wall speed again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import FastForwardConfig, TimeSkippingConfig, WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)

from tests.support.conditions import wait_for

# The dev server's command line for the tests' session: time skipping is off unless allowed here.
SERVER_ARGS = ("--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true")


class _SkipTimers(Interceptor):
    """Starts every workflow with time skipping on."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _SkipTimersOutbound(next)


class _SkipTimersOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.time_skipping_config = TimeSkippingConfig(enabled=True)
        return await super().start_workflow(input)


def skipping_client(client: Client) -> Client:
    """`client`, but the runs it starts skip time whenever nothing is in flight."""
    config = client.config()
    config["interceptors"] = [*config["interceptors"], _SkipTimers()]
    return Client(**config)


async def fast_forward(client: Client, handle: WorkflowHandle[Any, Any], by: timedelta) -> None:
    """Move the run's clock ahead by `by` (once nothing is in flight) and wait until it got there."""
    execution = WorkflowExecution(workflow_id=handle.id)
    skip = FastForwardConfig(id=uuid.uuid4().hex, duration=Duration(seconds=int(by.total_seconds())))
    await client.workflow_service.update_workflow_execution_options(
        UpdateWorkflowExecutionOptionsRequest(
            namespace=client.namespace,
            workflow_execution=execution,
            workflow_execution_options=WorkflowExecutionOptions(
                time_skipping_config=TimeSkippingConfig(enabled=True, fast_forward_config=skip)
            ),
            # The config is replaced as a whole (the API does not take its sub-fields).
            update_mask=FieldMask(paths=["time_skipping_config"]),
        )
    )

    async def arrived() -> bool:
        described = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=execution)
        )
        # Skipping turns itself off once the fast-forward reached its target time.
        return not described.workflow_extended_info.time_skipping_info.effective_config.enabled

    await wait_for(arrived, what=f"the run's clock to move {by} ahead")
