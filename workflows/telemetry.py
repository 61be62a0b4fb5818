"""This process's telemetry plumbing: Temporal's runtime (core logs, Prometheus) and OTLP tracing.

Metrics: Temporal core serves one Prometheus endpoint (`AIRLOCK_METRICS_BIND`) with its own
metrics and every metric Airlock records through Temporal's metric meters (workflows/metrics.py).
Tracing (`AIRLOCK_TRACING`): Temporal's `TracingInterceptor` on the client that starts a run and
on the worker, so a run is one trace: the client's start, the workflow, every model turn and
tool call (activities). The MCP SDK puts the current span into each request's `_meta` as
`traceparent` (SEP-414), so an MCP server that traces joins the same trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from workflows.metrics import HISTOGRAM_BUCKETS
from workflows.settings import Settings

# Core's records arrive here and pass the same handler (format, scrubber) as every other line.
CORE_LOGGER = "temporalio.core"
TRACES_PATH = "/v1/traces"
FLUSH_TIMEOUT_MS = 5_000


def build_runtime(settings: Settings) -> Runtime:
    """A Temporal runtime that forwards core logs to Python logging and, if asked, serves Prometheus.

    Without the log forwarding, core writes its warnings ([TMPRL1104] ...) to stdout itself, with
    ANSI colours. The Prometheus listener lives as long as the runtime does.
    """
    metrics = None
    if settings.metrics_bind:
        metrics = PrometheusConfig(bind_address=settings.metrics_bind, histogram_bucket_overrides=HISTOGRAM_BUCKETS)
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level=settings.temporal_core_log_level.upper(), other_level="ERROR"),
            # The target (which part of core) goes into the logger name, the fields into the message.
            forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER), prepend_target_on_message=False),
        ),
        metrics=metrics,
    ))


def install_runtime(settings: Settings) -> Runtime:
    """Make `build_runtime(settings)` the default Temporal runtime; call before any client connects."""
    runtime = build_runtime(settings)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def traces_url(endpoint: str | None) -> str | None:
    """The OTLP/HTTP traces URL for a collector's base URL (None: let the exporter read OTEL_* itself)."""
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class Tracing:
    """One tracer provider exporting spans over OTLP/HTTP, and the Temporal interceptor using it."""

    def __init__(self, settings: Settings, *, service: str = "airlock", install_global: bool = True) -> None:
        """Export to `settings.otlp_endpoint`; `install_global` also makes it the process's provider.

        The global provider is what other libraries' spans (the MCP SDK's "MCP send tools/call")
        are made with; a process can set it only once, so tests keep theirs local.
        """
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still apply: `create` merges them in.
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        if install_global:
            trace.set_tracer_provider(self.provider)
        self.interceptor = TracingInterceptor(self.provider.get_tracer("airlock"))

    @property
    def interceptors(self) -> Sequence[TracingInterceptor]:
        """What a worker or client adds to its interceptors."""
        return [self.interceptor]

    def client(self, client: Client) -> Client:
        """`client` with the tracing interceptor, so what it starts begins a trace."""
        config = client.config()
        config["interceptors"] = [*config["interceptors"], self.interceptor]
        return Client(**config)

    def shutdown(self) -> None:
        """Send what is still buffered and stop exporting (before the process exits)."""
        self.provider.force_flush(FLUSH_TIMEOUT_MS)
        self.provider.shutdown()


def start_tracing(settings: Settings, *, service: str = "airlock") -> Tracing | None:
    """Tracing as the settings ask for it: None unless `AIRLOCK_TRACING=true`."""
    return Tracing(settings, service=service) if settings.tracing else None
