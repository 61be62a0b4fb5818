"""`AirlockPlugin`: Airlock's workflows, activities, converter, interceptors and sandbox in one object.

Add it to any Temporal worker, as the OpenAI Agents and MCP integrations are added:

    worker = Worker(client, task_queue="airlock", plugins=[AirlockPlugin(activities)])

It registers `AgentWorkflow` and `PipelineWorkflow`, the activity of every declared step
(`workflows/steps.py`), the failure scrubber (innermost, so other interceptors only ever see
scrubbed failures), the workflow runner and its sandbox passthrough, and Airlock's data converter:
for a client connected with the plugin, and for a worker whose client was connected without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import Interceptor, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.airlock_activities import AirlockActivities
from runtime.build import PASSTHROUGH_MODULES, WORKFLOWS, activity_list, workflow_runner
from runtime.converter import DATA_CONVERTER
from runtime.interceptors import ScrubFailures

PLUGIN_NAME = "airlock.AirlockPlugin"


class AirlockPlugin(SimplePlugin):
    """Host Airlock on a Temporal worker: workflows, activities, converter, interceptors, runner."""

    def __init__(
        self,
        activities: AirlockActivities,
        *,
        data_converter: DataConverter = DATA_CONVERTER,
        interceptors: Sequence[Interceptor] = (),
        sandboxed: bool = False,
    ) -> None:
        """Bundle Airlock for a worker.

        Args:
            activities: the worker's implementations (catalog, MCP pool, model backend).
            data_converter: Airlock's converter; one that encrypts (`runtime.converter.data_converter`
                with a keys file) when payloads are encrypted.
            interceptors: more worker interceptors (tracing, metrics), run outside the scrubber.
            sandboxed: run workflow code in Temporal's checking sandbox, with Airlock's
                third-party passthrough; by default it runs unsandboxed (see `runtime/build.py`).
        """
        self._converter = data_converter
        self._sandboxed = sandboxed
        super().__init__(
            PLUGIN_NAME,
            data_converter=data_converter,
            interceptors=[*interceptors, ScrubFailures(activities.redactor)],
            activities=activity_list(activities),
            workflows=WORKFLOWS,
            workflow_runner=self._runner,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Add Airlock to the worker; a client connected without the plugin gets Airlock's converter."""
        config = super().configure_worker(config)
        client = config.get("client")
        if client is not None and client.data_converter != self._converter:
            # Same connection and namespace; only how payloads are read and written changes. The
            # client's plugins already shaped its active config, so they are not applied again.
            active = client.config(active_config=True)
            active["data_converter"] = self._converter
            active["plugins"] = []
            config["client"] = Client(**active)
        return config

    def _runner(self, given: WorkflowRunner | None) -> WorkflowRunner:
        if not self._sandboxed:
            return workflow_runner(sandboxed=False)
        if isinstance(given, SandboxedWorkflowRunner):
            # Keep the worker's own restrictions; add what Airlock's workflow code shares.
            restrictions = given.restrictions.with_passthrough_modules(*PASSTHROUGH_MODULES)
            return dataclasses.replace(given, restrictions=restrictions)
        return workflow_runner(sandboxed=True)
