"""Airlock's own metrics, recorded by the worker through Temporal's metric meters.

They come out of the same Prometheus endpoint as Temporal's own (runtime/telemetry.py):
- `airlock_tool_calls_total{server, tool, outcome}`: tool call attempts (read and write activities);
- `airlock_model_tokens_total{agent, model, kind}`: tokens the model activity reported (input, output;
  `model="scripted"` for the offline scripted model);
- `airlock_mcp_breaker_state{server}`: the server's circuit breaker as of its last call
  (0 closed, 1 half-open, 2 open);
- `airlock_pending_approvals{agent}`: calls waiting for a decision in the runs this worker holds;
- `airlock_runs_awaiting_approval{agent}`: runs waiting at the gate, cluster-wide (visibility);
- `airlock_approval_decision_seconds{agent, decision}`: request → decision (workflows/gate_metrics.py);
- `airlock_mcp_tool_changes_total{server, status}`: tools found changed or new against their pins
  (activities/pins.py), once per distinct definition a worker meets;
- `airlock_dependency_up{kind, name}`: 1 when the model endpoint (`kind="model"`) or an MCP server
  (`kind="mcp_server"`) answered the worker's last probe, 0 when not (runtime/health.py).

Labels are bounded: servers come from servers.toml, agents and models from the agent files,
outcomes from a fixed list, and a server's tool names are capped (`MAX_TOOLS_PER_SERVER`, then
`(other)`, which no MCP tool name can be). No label carries a workflow, run or call id.
Activity-side facts are read off each activity's input and result by an interceptor, so the
activities themselves stay free of metrics code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import structlog
import temporalio.exceptions
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from mcp_servers.client.registry import McpPool
from workflows.gate_metrics import DECISION_SECONDS, PENDING_EXTERN, RUN_ENDED_EXTERN
from workflows.payloads import ModelCall, ModelReply, ToolCall, ToolReply

log = structlog.get_logger(__name__)

TOOL_CALLS = "airlock_tool_calls_total"
MODEL_TOKENS = "airlock_model_tokens_total"
BREAKER_STATE = "airlock_mcp_breaker_state"
PENDING_APPROVALS = "airlock_pending_approvals"
RUNS_WAITING = "airlock_runs_awaiting_approval"
DEPENDENCY_UP = "airlock_dependency_up"
TOOL_CHANGES = "airlock_mcp_tool_changes_total"
SAMPLE_EVERY = timedelta(seconds=30)
TOOL_ACTIVITIES = frozenset({"airlock.read", "airlock.write"})
MODEL_ACTIVITY = "airlock.model"

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
# The failure types the tool activities raise, as outcome labels; anything else is "failed".
FAILURE_OUTCOMES = {
    "ToolNotSent": "not_sent",
    "OutcomeUnknown": "outcome_unknown",
    "CircuitOpen": "circuit_open",
    "ToolUnavailable": "unavailable",
}
MAX_TOOLS_PER_SERVER = 100
OTHER_TOOL = "(other)"
# Decisions take seconds to days; Temporal's default buckets are made for milliseconds.
HISTOGRAM_BUCKETS = {DECISION_SECONDS: [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, 604800.0]}


class ToolLabels:
    """The `tool` label for a server's tool name: the name itself for the first few, then `(other)`.

    A server chooses its tool names and may change them at will; without a cap it could make
    the worker's metrics grow without end.
    """

    def __init__(self, limit: int = MAX_TOOLS_PER_SERVER) -> None:
        """Keep at most `limit` names per server."""
        self.limit = limit
        self._seen: dict[str, set[str]] = {}

    def label(self, server: str, tool: str) -> str:
        """`tool`, or `(other)` once the server has used up its names."""
        seen = self._seen.setdefault(server, set())
        if tool in seen:
            return tool
        if len(seen) >= self.limit:
            return OTHER_TOOL
        seen.add(tool)
        return tool


class PendingApprovals:
    """Calls waiting for a decision in the runs this worker holds, summed per agent into one gauge.

    Each run reports its own count whenever it changes and when it is rebuilt (replay); a run
    that ends, continues as new or leaves the worker's cache is dropped, so another worker that
    takes it over counts it instead.
    """

    def __init__(self, meter: MetricMeter) -> None:
        """Publish on `meter` (the worker's runtime meter: one series per agent, not per run)."""
        self._gauge = meter.create_gauge(PENDING_APPROVALS, "Calls waiting for a decision, in runs this worker holds")
        self._runs: dict[str, dict[str, int]] = {}

    def report(self, run_id: str, waiting: Mapping[str, int]) -> None:
        """Run `run_id` now has `waiting[agent]` calls waiting, per agent."""
        before = self._runs.get(run_id, {})
        self._runs[run_id] = {agent: int(count) for agent, count in waiting.items()}
        self._publish(set(before) | set(waiting))

    def drop(self, run_id: str) -> None:
        """Run `run_id` is no longer on this worker."""
        self._publish(set(self._runs.pop(run_id, {})))

    def total(self, agent: str) -> int:
        """Calls of `agent` waiting across the runs held."""
        return sum(run.get(agent, 0) for run in self._runs.values())

    def _publish(self, agents: set[str]) -> None:
        for agent in agents:
            self._gauge.set(self.total(agent), {"agent": agent})


class DependencyGauge:
    """`airlock_dependency_up{kind, name}`: whether a dependency answered its last probe (1) or not (0)."""

    def __init__(self, meter: MetricMeter) -> None:
        """Publish on `meter` (the worker's runtime meter)."""
        self._gauge = meter.create_gauge(DEPENDENCY_UP, "Dependency answered its last probe: 1 up, 0 down")

    def set(self, kind: str, name: str, up: bool) -> None:
        """Publish the state of one dependency (names come from servers.toml and the settings)."""
        self._gauge.set(1 if up else 0, {"kind": kind, "name": name})


class WaitingRuns:
    """Runs of each agent waiting at the gate on one task queue, as Temporal's visibility counts them.

    Unlike `airlock_pending_approvals`, this does not depend on which runs a worker holds, so it
    stays right across worker restarts; every worker reports the same cluster-wide number.
    """

    def __init__(self, client: Client, task_queue: str, agents: Iterable[str], meter: MetricMeter) -> None:
        """Count the runs of `agents` (names from the catalog: lower-case, digits, `_`) on `task_queue`."""
        self.client = client
        self.task_queue = task_queue.replace("\\", "\\\\").replace('"', '\\"')
        self.agents = sorted(agents)
        self._gauge = meter.create_gauge(RUNS_WAITING, "Runs waiting at the approval gate (visibility, cluster-wide)")

    async def sample(self) -> dict[str, int]:
        """Count now and publish; returns the counts by agent."""
        counts: dict[str, int] = {}
        for agent in self.agents:
            query = (
                f'AirlockState="awaiting_approval" AND ExecutionStatus="Running" '
                f'AND AirlockAgent="{agent}" AND TaskQueue="{self.task_queue}"'
            )
            counts[agent] = (await self.client.count_workflows(query)).count
            self._gauge.set(counts[agent], {"agent": agent})
        return counts

    async def run(self, stop: asyncio.Event, every: timedelta = SAMPLE_EVERY) -> None:
        """Sample every `every` until `stop` is set; a failed count is logged and tried again later."""
        while not stop.is_set():
            try:
                await self.sample()
            except RPCError as err:
                log.warning("waiting runs not counted", error=err.message, retry_seconds=every.total_seconds())
            try:
                await asyncio.wait_for(stop.wait(), every.total_seconds())
            except TimeoutError:
                pass


class AirlockMetrics(Interceptor):
    """Records Airlock's metrics around every activity and workflow of a worker."""

    def __init__(
        self, pool: McpPool, meter: MetricMeter, tools: ToolLabels | None = None, *, model_label: str | None = None
    ) -> None:
        """Read breaker states from `pool`; publish process-wide gauges on `meter`.

        `model_label` names the model in every token count instead of the agent file's `model`:
        the scripted model answers whatever the file says, and a dashboard must not show it as one.
        """
        self.pool = pool
        self.model_label = model_label
        self.tools = tools or ToolLabels()
        self.pending = PendingApprovals(meter)
        self._breaker = meter.create_gauge(BREAKER_STATE, "MCP circuit breaker: 0 closed, 1 half-open, 2 open")
        for server in pool.servers:
            self.breaker_changed(server)

    def breaker_changed(self, server: str) -> None:
        """Publish `server`'s breaker state as it is now."""
        state = self.pool.connection(server).breaker.state
        self._breaker.set(BREAKER_VALUES[state], {"server": server})

    def tool_called(self, meter: MetricMeter, server: str, tool: str, outcome: str) -> None:
        """Count one tool call attempt on `meter` (an activity's meter adds namespace, task queue, type)."""
        meter.create_counter(TOOL_CALLS, "Tool call attempts by server, tool and outcome").add(
            1,
            {"server": server, "tool": self.tools.label(server, tool), "outcome": outcome},
        )

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Count tool calls and tokens around each activity."""
        return _ActivityMetrics(next, self)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        """Give workflows the functions gate_metrics reports through; drop a run once it leaves."""
        input.unsafe_extern_functions.update(
            {
                PENDING_EXTERN: self.pending.report,
                RUN_ENDED_EXTERN: self.pending.drop,
            }
        )
        return _RunEnds


class _ActivityMetrics(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: AirlockMetrics) -> None:
        super().__init__(next)
        self.root = root

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        kind = activity.info().activity_type
        call = input.args[0] if input.args else None
        if kind in TOOL_ACTIVITIES and isinstance(call, ToolCall):
            return await self._tool(input, call)
        result = await self.next.execute_activity(input)
        if kind == MODEL_ACTIVITY and isinstance(call, ModelCall) and isinstance(result, ModelReply):
            tokens = activity.metric_meter().create_counter(MODEL_TOKENS, "Model tokens reported by the provider")
            labels = {"agent": call.agent, "model": self.root.model_label or call.model}
            tokens.add(result.usage.input_tokens, {**labels, "kind": "input"})
            tokens.add(result.usage.output_tokens, {**labels, "kind": "output"})
        return result

    async def _tool(self, input: ExecuteActivityInput, call: ToolCall) -> Any:
        outcome = "failed"
        try:
            result = await self.next.execute_activity(input)
            if isinstance(result, ToolReply):
                outcome = result.outcome
            return result
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            outcome = "cancelled"
            raise
        except ApplicationError as err:
            outcome = FAILURE_OUTCOMES.get(err.type or "", "failed")
            raise
        finally:
            self.root.tool_called(activity.metric_meter(), call.server, call.tool, outcome)
            if call.server in self.root.pool.servers:
                self.root.breaker_changed(call.server)


class _RunEnds(WorkflowInboundInterceptor):
    """Tells the worker when a run stops being held here: completed, failed, continued or evicted."""

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await super().execute_workflow(input)
        finally:
            # Also on eviction from the worker's cache, which cancels the run's coroutines here.
            ended = workflow.extern_functions().get(RUN_ENDED_EXTERN)
            if callable(ended):
                ended(workflow.info().run_id)


def tool_changed(server: str, status: str) -> None:
    """Count one tool definition found changed or new against its pin, from inside an activity."""
    if activity.in_activity():
        counter = activity.metric_meter().create_counter(TOOL_CHANGES, "Tools found changed or new against their pins")
        counter.add(1, {"server": server, "status": status})
