"""Traces and metrics with real parts: `python worker.py` and `airlock run` export spans over
OTLP/HTTP to a loopback receiver, a stdio MCP server writes down the `_meta` it is sent, and the
worker's Prometheus endpoint is scraped over HTTP and parsed with prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from prometheus_client.samples import Sample
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from mcp_servers.client.registry import McpPool
from runtime import telemetry, tracing
from runtime.devserver import free_port
from runtime.metrics import OTHER_TOOL, AirlockMetrics, ToolLabels, WaitingRuns
from runtime.redaction import REDACTED, Redactor
from runtime.settings import Settings
from tests.support.airlock_cli import address_of, airlock
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.metrics import metrics_worker, scrape
from tests.support.openai_stub import OpenAIStub, Text, ToolCalls
from tests.support.otlp_receiver import OtlpReceiver, Span
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server
from tests.support.worker_process import REPO_ROOT, project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # starts workers, MCP servers and receivers

META_SERVERS = f"""
[servers.meta]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.meta_mcp"]
cwd = "{REPO_ROOT}"
env = ["MCP_META_LOG"]
trust = "trusted"
"""

DESK_AGENT = """
name = "desk"
model = "gpt-test"
instructions = "You close tickets."
mcp_servers = ["meta"]

[tools]
close_ticket = "approve"

[approval]
approvers = ["alice"]
"""
REPLIES = [
    ToolCalls([("get_ticket", {"ticket_id": "T-1"})]),
    ToolCalls([("close_ticket", {"ticket_id": "T-1"})]),
    Text("Closed T-1."),
]
# What the stub reports for each reply (tests/support/openai_stub.py).
INPUT_TOKENS, OUTPUT_TOKENS = 11, 7
AIRLOCK_FAMILIES = (
    "airlock_tool_calls",
    "airlock_model_tokens",
    "airlock_mcp_breaker_state",
    "airlock_pending_approvals",
    "airlock_approval_decision_seconds",
    "airlock_runs_awaiting_approval",
)
TRACE_HEADER = "_tracer-data"  # where Temporal's TracingInterceptor carries the trace context
LONG_SUPPORT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]
max_turns = 100

[tools]
"get_*" = "auto"

[approval]
approvers = ["alice"]
"""
READS_BETWEEN = 12
PER_RUN_LABELS = {"workflow_id", "run_id", "call_id", "temporalWorkflowID", "activity_id"}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float | None:
    """The value of the one sample named `sample` whose labels include `labels`, if there is one."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = [
        s.value
        for s in families.get(family, [])
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{sample}{labels} matches {len(found)} samples"
    return found[0] if found else None


async def _pending_if_started(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]] | None:
    """The run's pending calls once it exists and waits (None until then)."""
    try:
        pending: list[dict[str, Any]] = await handle.query("pending_approvals", result_type=list)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None  # `airlock run` has not started it yet
        raise
    return pending or None


def trace_ids(spans: Iterable[Span]) -> set[str]:
    """The distinct trace ids among `spans`."""
    return {span.trace_id for span in spans}


def named(spans: list[Span], name: str) -> list[Span]:
    """The spans called `name`."""
    return [span for span in spans if span.name == name]


async def test_a_run_through_an_approval_is_one_trace_and_its_metrics_are_scraped(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, agents={"desk": DESK_AGENT}, servers=META_SERVERS)
    meta_log = tmp_path / "meta.jsonl"
    project.environ["MCP_META_LOG"] = str(meta_log)
    metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
    with OtlpReceiver() as receiver, OpenAIStub(REPLIES) as stub:
        traced = {
            "AIRLOCK_TRACING": "true",
            "AIRLOCK_OTLP_ENDPOINT": receiver.endpoint,
            # Export within a tenth of a second, not the SDK's default five.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        env = project_env(
            project,
            address_of(temporal_env),
            **traced,
            AIRLOCK_MODEL_PROVIDER="openai",
            OPENAI_BASE_URL=stub.base_url,
            OPENAI_API_KEY="sk-test-telemetry",
            AIRLOCK_METRICS_BIND=metrics_url.removeprefix("http://").removesuffix("/metrics"),
        )
        async with worker_process(env) as worker:
            run_id = workflow_id("traced")
            # `--follow` polls the run's status until it ends: only the start may be traced.
            following = asyncio.create_task(
                airlock(
                    "-o",
                    "json",
                    "run",
                    "desk",
                    "Close T-1, it is fixed.",
                    "--id",
                    run_id,
                    "--requester",
                    "carol",
                    "--follow",
                    home=tmp_path,
                    env={
                        "AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env),
                        "AIRLOCK_TASK_QUEUE": project.settings.task_queue,
                        **traced,
                    },
                )
            )
            handle: WorkflowHandle[Any, AgentResult] = client.get_workflow_handle(run_id, result_type=AgentResult)
            [call] = await wait_for(lambda: _pending_if_started(handle), what="the run to wait for alice")

            async def waiting_gauge() -> dict[str, list[Sample]] | None:
                families = await scrape(metrics_url)
                return families if value(families, "airlock_pending_approvals", agent="desk") == 1 else None

            await wait_for(waiting_gauge, what="airlock_pending_approvals{agent=desk} = 1")
            await handle.signal("approve", decision(call, "alice"))
            result = await handle.result()
            followed = (await following).json()
            assert (followed["workflow_id"], followed["completed"]) == (run_id, True)
            assert result.output == "Closed T-1."
            assert [(a.tool, a.decision, a.outcome) for a in result.approvals] == [("close_ticket", "approved", "ok")]

            async def settled() -> dict[str, list[Sample]] | None:
                families = await scrape(metrics_url)
                done = value(families, "airlock_approval_decision_seconds_count", agent="desk", decision="approved")
                gauge = value(families, "airlock_pending_approvals", agent="desk")
                return families if done == 1 and gauge == 0 else None

            families = await wait_for(settled, what="the decision in the histogram and nothing pending")
        # The worker has stopped (and flushed its spans): every span it made has arrived.
        assert worker.proc.returncode is not None

    # --- traces: one trace from the CLI's start through the workflow to each model turn and tool call
    spans = receiver.spans()
    [start] = named(spans, "StartWorkflow:AgentWorkflow")
    assert start.service == "airlock-cli" and start.attributes["temporalWorkflowID"] == run_id
    trace = start.trace_id
    runs = [s for s in spans if s.attributes.get("temporalWorkflowID") == run_id]
    assert trace_ids(runs) == {trace}, "every span of the run is in the trace the client started"
    [workflow_span] = named(runs, "RunWorkflow:AgentWorkflow")
    assert workflow_span.parent_span_id == start.span_id and workflow_span.service == "airlock-worker"
    model_turns = named(runs, "RunActivity:airlock.model")
    assert len(model_turns) == len(REPLIES) and stub.remaining == 0
    assert named(runs, "HandleSignal:approve"), "the decision is in the run's trace"
    assert not [s for s in spans if s.service == "airlock-cli" and s is not start], "the CLI traces only the start"
    assert not [s for s in spans if s.name.startswith("HandleQuery")], "no query joined the trace"
    [read] = named(runs, "RunActivity:airlock.read")
    [write] = named(runs, "RunActivity:airlock.write")
    starts = {
        s.span_id
        for s in named(runs, "StartActivity:airlock.model")
        + named(runs, "StartActivity:airlock.read")
        + named(runs, "StartActivity:airlock.write")
    }
    assert {s.parent_span_id for s in [*model_turns, read, write]} <= starts, "each activity run has its start"
    # The MCP SDK's client span for each tools/call is a child of the tool activity's span.
    [send_read] = named(spans, "MCP send tools/call get_ticket")
    [send_write] = named(spans, "MCP send tools/call close_ticket")
    assert (send_read.parent_span_id, send_write.parent_span_id) == (read.span_id, write.span_id)
    assert trace_ids([send_read, send_write]) == {trace}

    # --- the MCP server was sent that trace in `_meta` (W3C traceparent: 00-trace-span-flags)
    received = {line["tool"]: line["meta"] for line in map(json.loads, meta_log.read_text().splitlines())}
    assert set(received) == {"get_ticket", "close_ticket"}
    for tool, sender in (("get_ticket", send_read), ("close_ticket", send_write)):
        version, trace_id, parent, _flags = received[tool]["traceparent"].split("-")
        assert (version, trace_id, parent) == ("00", trace, sender.span_id), tool
    assert received["close_ticket"]["airlock/idempotency_key"] == f"{run_id}/{call['call_id']}"

    # --- metrics: Temporal's own and Airlock's, from one scrape
    queue = {"task_queue": project.settings.task_queue}
    assert value(families, "temporal_workflow_completed_total", workflow_type="AgentWorkflow", **queue) == 1
    assert any(name.startswith("temporal_activity_execution") for name in families)
    for tool in ("get_ticket", "close_ticket"):
        assert value(families, "airlock_tool_calls_total", server="meta", tool=tool, outcome="ok") == 1, tool
    model = {"agent": "desk", "model": "gpt-test"}
    assert value(families, "airlock_model_tokens_total", **model, kind="input") == INPUT_TOKENS * len(REPLIES)
    assert value(families, "airlock_model_tokens_total", **model, kind="output") == OUTPUT_TOKENS * len(REPLIES)
    assert result.usage.input_tokens == INPUT_TOKENS * len(REPLIES)
    assert value(families, "airlock_mcp_breaker_state", server="meta") == 0
    seconds = value(families, "airlock_approval_decision_seconds_sum", agent="desk", decision="approved")
    assert seconds is not None and 0 < seconds < 120
    buckets = {b.labels["le"] for b in families["airlock_approval_decision_seconds"] if "le" in b.labels}
    assert {"1", "60", "3600", "86400"} <= buckets, "decisions are bucketed in seconds to days"
    for family in AIRLOCK_FAMILIES:
        assert families.get(family), f"{family} is exported"
        for sample in families[family]:
            assert not PER_RUN_LABELS & set(sample.labels), f"{sample} is labelled per run"
    await assert_replays(handle)


@dataclass
class Served:
    """A Temporal runtime serving Prometheus in this process, and its scrape URL."""

    runtime: Runtime | None
    url: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """A runtime like the worker's with AIRLOCK_METRICS_BIND on a free port; its listener is stopped after."""
    port = free_port()
    served = Served(
        telemetry.build_runtime(Settings(metrics_bind=f"127.0.0.1:{port}", data_dir=tmp_path)),
        f"http://127.0.0.1:{port}/metrics",
    )
    yield served
    # The listener lives as long as the runtime: dropping the last reference stops it.
    served.runtime = None
    gc.collect()

    await wait_for(lambda: refused(port), what="the metrics listener to stop")


async def refused(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:`port` now."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_odd_label_values_are_escaped_and_a_servers_tool_names_are_capped(served: Served) -> None:
    # A server's name is checked by servers.toml and a tool's by the MCP name rule before either
    # reaches a label; the exposition must still carry any value intact if one ever does.
    assert served.runtime is not None
    meter = served.runtime.metric_meter
    metrics = AirlockMetrics(McpPool({}), meter, tools=ToolLabels(limit=5))
    odd = ['we"ird', "back\\slash", "new\nline", "brace}{=,", "ünï code", ""]
    for name in odd:
        metrics.tool_called(meter, f"srv {name}", name, "ok")
    for n in range(12):
        metrics.tool_called(meter, "busy", f"tool_{n}", "error")
    url = served.url

    async def exported() -> dict[str, list[Sample]] | None:
        families = await scrape(url)
        return families if len(families.get("airlock_tool_calls", [])) >= len(odd) + 6 else None

    families = await wait_for(exported, what="the tool call series")
    samples = families["airlock_tool_calls"]
    odd_series = {(s.labels["server"], s.labels["tool"]) for s in samples if s.labels["server"] != "busy"}
    assert odd_series == {(f"srv {name}", name) for name in odd}
    busy = {s.labels["tool"]: s.value for s in samples if s.labels["server"] == "busy"}
    assert busy == {**{f"tool_{n}": 1.0 for n in range(5)}, OTHER_TOOL: 7.0}, "at most 5 names, then (other)"


async def test_a_run_that_continues_as_new_reports_each_decision_once(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    close = [
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": f"T-{n}", "resolution": "fixed"}}}
        for n in (1, 2)
    ]
    reads = [{"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-3"}}}] * READS_BETWEEN
    project = make_project(
        tmp_path,
        agents={"support": LONG_SUPPORT},
        script={
            "support": [close[0], *reads, close[1], {"message": "Closed both."}],
        },
    )
    # In the checking sandbox: the run reports its gate from sandboxed workflow code too.
    async with metrics_worker(
        project, temporal_env, AIRLOCK_MAX_HISTORY_EVENTS="40", AIRLOCK_WORKFLOW_SANDBOX="true"
    ) as url:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1 and T-2.", requester="carol"),
            id=workflow_id("metered-can"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        for _ in close:
            [call] = await wait_pending(handle)
            await handle.signal("approve", decision(call, "alice"))
            await wait_for(lambda call=call: decided(client, handle.id, call["call_id"]), what="the decision")
        result = await asyncio.wait_for(handle.result(), 60)

        async def settled() -> dict[str, list[Sample]] | None:
            families = await scrape(url)
            return families if value(families, "airlock_pending_approvals", agent="support") == 0 else None

        families = await wait_for(settled, what="nothing pending")
    assert result.output == "Closed both."
    runs = [run async for run in temporal_env.client.list_workflows(f'WorkflowId = "{handle.id}"')]
    assert len(runs) >= 2, "the run continued as new, carrying its decided approvals"
    queue = {"task_queue": project.settings.task_queue}
    assert (
        value(families, "airlock_approval_decision_seconds_count", agent="support", decision="approved", **queue) == 2
    ), "each decision counted once, not again by the run that carried it"
    assert (
        value(families, "airlock_tool_calls_total", server="tickets", tool="get_ticket", outcome="ok", **queue)
        == READS_BETWEEN
    )
    assert (
        value(families, "airlock_tool_calls_total", server="tickets", tool="close_ticket", outcome="ok", **queue) == 2
    )
    for run in runs:
        await assert_replays(temporal_env.client.get_workflow_handle(handle.id, run_id=run.run_id))


async def test_runs_waiting_at_the_gate_are_counted_cluster_wide(
    served: Served,
    client: Client,
    tmp_path: Path,
) -> None:
    project = make_project(
        tmp_path,
        script={
            "support": [
                {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
                {"message": "Closed T-1."},
            ]
        },
    )
    assert served.runtime is not None
    # Another worker's view: the count comes from visibility, not from what this process holds.
    waiting = WaitingRuns(client, project.settings.task_queue, ["support", "idle"], served.runtime.metric_meter)
    assert await waiting.sample() == {"support": 0, "idle": 0}
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="carol"),
            id=workflow_id("counted"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [call] = await wait_pending(handle)

        async def counted(expected: int) -> dict[str, list[Sample]] | None:
            if (await waiting.sample())["support"] != expected:
                return None  # visibility catches up within moments
            families = await scrape(served.url)
            return families if value(families, "airlock_runs_awaiting_approval", agent="support") == expected else None

        families = await wait_for(lambda: counted(1), what="one run counted as waiting")
        assert value(families, "airlock_runs_awaiting_approval", agent="idle") == 0
        await handle.signal("approve", decision(call, "alice"))
        await handle.result()
        await wait_for(lambda: counted(0), what="no run counted as waiting")
    await assert_replays(handle)


async def test_a_server_that_goes_down_shows_in_tool_outcomes_and_its_breaker_gauge(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    port = free_port()
    project = make_project(
        tmp_path,
        servers=f"""
    [servers.tickets]
    transport = "http"
    url = "http://127.0.0.1:{port}/mcp"
    {AUTH_HEADER}
    trust = "trusted"
    timeout = "5s"
    [servers.tickets.breaker]
    failures = 2
    window = "30s"
    cooldown = "300s"
    """,
        script={
            "support": [
                {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
                {"tool_call": {"name": "comment_on_ticket", "arguments": {"ticket_id": "T-1", "text": "pause"}}},
                {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-2"}}},
                {"message": "Done."},
            ]
        },
    )
    project.environ["TICKETS_TOKEN"] = TICKETS_TOKEN
    async with (
        tickets_http_server(tmp_path / "http.db", port=port) as tickets,
        metrics_worker(project, temporal_env) as url,
    ):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Read T-1 and T-2.", requester="carol"),
            id=workflow_id("breaker-gauge"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pause] = await wait_pending(handle)
        os.kill(tickets.pid, signal.SIGKILL)  # gone while the run waits; its context reaps it
        await wait_for(lambda: refused(port), what="the tickets server to be gone")
        # The second read fails twice (the circuit opens) and is then refused without a connection.
        await handle.signal("reject", decision(pause, "alice", reason="not now"))
        result = await asyncio.wait_for(handle.result(), 60)
        families = await scrape(url)
    assert result.output == "Done."
    tools = {
        (s.labels["tool"], s.labels["outcome"]): s.value
        for s in families["airlock_tool_calls"]
        if s.labels["task_queue"] == project.settings.task_queue
    }
    assert tools == {("get_ticket", "ok"): 1, ("get_ticket", "unavailable"): 2, ("get_ticket", "circuit_open"): 1}
    assert value(families, "airlock_mcp_breaker_state", server="tickets") == 2, "open"
    assert (
        value(
            families,
            "airlock_approval_decision_seconds_count",
            agent="support",
            decision="rejected",
            task_queue=project.settings.task_queue,
        )
        == 1
    )
    await assert_replays(handle)


async def decided(client: Client, run_id: str, call_id: str) -> bool:
    """Whether the audit of the run's latest execution records an approval of `call_id`."""
    audit: list[dict[str, Any]] = await client.get_workflow_handle(run_id).query("audit", result_type=list)
    return any(entry["call_id"] == call_id and entry["event"] == "approved" for entry in audit)


def test_spans_leave_the_worker_scrubbed_of_its_secrets(tmp_path: Path) -> None:
    # What an MCP server or a provider answers becomes a span's status and exception event.
    secret = "sk-live-telemetry-0123456789"
    with OtlpReceiver() as receiver:
        tracer = tracing.Tracing(Settings(otlp_endpoint=receiver.endpoint, data_dir=tmp_path), install_global=False)
        tracer.scrub_with(Redactor([secret]))
        try:
            with tracer.provider.get_tracer("test").start_as_current_span(f"call {secret}") as span:
                span.set_attribute("http.response.body", f"Bearer {secret}")
                span.set_attribute("echoed", [f"token={secret}", "plain"])
                span.record_exception(RuntimeError(f"server said: token {secret} refused"))
                span.set_status(StatusCode.ERROR, f"401 unauthorized: {secret}")
        finally:
            tracer.shutdown()  # flushes: the span has been received when this returns
    [span] = receiver.spans()
    assert secret not in repr(span)
    assert span.name == f"call {REDACTED}" and span.status == f"401 unauthorized: {REDACTED}"
    assert span.attributes["http.response.body"] == f"Bearer {REDACTED}"
    [(event, attributes)] = span.events
    assert event == "exception" and attributes["exception.message"] == f"server said: token {REDACTED} refused"


def test_the_otlp_endpoint_is_a_base_url_or_a_full_traces_url() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert tracing.traces_url(None) is None


def test_a_metrics_bind_that_is_not_host_port_is_named(tmp_path: Path) -> None:
    for bad in ("9464", "localhost:", "127.0.0.1:http", "127.0.0.1:70000"):
        try:
            Settings(metrics_bind=bad, data_dir=tmp_path)
        except ValueError as err:
            assert f"AIRLOCK_METRICS_BIND={bad!r}" in str(err)
        else:
            raise AssertionError(f"{bad!r} was accepted")


class ForgedTraceHeader(Interceptor):
    """A client that sends a `_tracer-data` header of its own making on starts, signals, queries and updates."""

    def __init__(self, payload: Payload) -> None:
        self.payload = payload

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        payload = self.payload

        class Forging(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                input.headers = {**input.headers, TRACE_HEADER: payload}
                return await super().start_workflow(input)

            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                input.headers = {**input.headers, TRACE_HEADER: payload}
                await super().signal_workflow(input)

            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                input.headers = {**input.headers, TRACE_HEADER: payload}
                return await super().query_workflow(input)

            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
                input.headers = {**input.headers, TRACE_HEADER: payload}
                return await super().start_workflow_update(input)

        return Forging(next)


FORGED = {
    "not JSON": Payload(metadata={"encoding": b"json/plain"}, data=b"{not json"),
    "a string": Payload(metadata={"encoding": b"json/plain"}, data=b'"00-abc"'),
    "a list": Payload(metadata={"encoding": b"json/plain"}, data=b'["traceparent"]'),
    "odd values": Payload(metadata={"encoding": b"json/plain"}, data=b'{"traceparent": 7, "tracestate": [1]}'),
    "unknown encoding": Payload(metadata={"encoding": b"binary/evil"}, data=b"\x00\xff"),
}


async def test_forged_trace_headers_neither_break_a_traced_run_nor_join_its_trace(
    client: Client,
    tmp_path: Path,
) -> None:
    script = [
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
        {"message": "Closed T-1."},
    ]
    project = make_project(tmp_path, script={"support": script})
    # A well-formed W3C context from elsewhere is honoured: the run joins that trace.
    honest = Payload(
        metadata={"encoding": b"json/plain"}, data=json.dumps({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}).encode()
    )
    cases = {**FORGED, "a real trace context": honest}
    with OtlpReceiver() as receiver:
        tracer = tracing.Tracing(Settings(otlp_endpoint=receiver.endpoint, data_dir=tmp_path), install_global=False)
        try:
            async with airlock_worker(client, project, interceptors=tracer.interceptors):
                handles = await asyncio.gather(
                    *(
                        run_with_header(client, project.settings.task_queue, payload, update=n % 2 == 1)
                        for n, payload in enumerate(cases.values())
                    )
                )
        finally:
            tracer.shutdown()  # flushes: every span has been received when this returns
    spans = receiver.spans()
    for case, handle in zip(cases, handles, strict=True):
        assert (await handle.result()).output == "Closed T-1.", case
        history = await handle.fetch_history()
        assert_no_task_failures(history)
        traced = [
            s
            for s in spans
            if s.attributes.get("temporalWorkflowID") == handle.id and s.name.endswith("Workflow:AgentWorkflow")
        ]
        if case == "a real trace context":
            assert traced and trace_ids(traced) == {"ab" * 16}, "a valid context from outside is joined"
        else:
            assert not traced, f"{case}: a forged header starts no trace of the run"
        await assert_replays(handle)


async def run_with_header(
    client: Client,
    task_queue: str,
    header: Payload,
    *,
    update: bool,
) -> WorkflowHandle[Any, AgentResult]:
    """Start a run, query it and decide its call (signal or update), all with `header` as trace header."""
    hostile = Client(**{**client.config(), "interceptors": [ForgedTraceHeader(header)]})
    handle = await hostile.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1.", requester="carol"),
        id=workflow_id("forged-trace"),
        task_queue=task_queue,
        result_type=AgentResult,
    )
    [call] = await wait_pending(handle)
    if update:
        await handle.execute_update("review", {**decision(call, "alice"), "decision": "approve"})
    else:
        await handle.signal("approve", decision(call, "alice"))
    await asyncio.wait_for(handle.result(), 30)
    return client.get_workflow_handle(handle.id, result_type=AgentResult)
