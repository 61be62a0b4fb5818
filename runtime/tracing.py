"""OpenTelemetry tracing (`AIRLOCK_TRACING`): one trace per run, exported over OTLP/HTTP.

Temporal's `TracingInterceptor` goes on the client that starts a run (`airlock run`) and on the
worker, so a run is one trace: the client's start, the workflow, every model turn and tool call
(activities), and the signals that decided its approvals. The MCP SDK puts the current span into
each request's `_meta` as `traceparent` (SEP-414), so an MCP server that traces joins the trace.
The Agents SDK's own tracing stays off: its spans would be made inside workflow code (again on
every replay) and its exporter sends to OpenAI; the activities already are its model and tool spans.
Spans leave the worker scrubbed of its secrets, like its logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import Attributes
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor
from temporalio.converter import PayloadConverter
from temporalio.worker import HandleQueryInput, HandleSignalInput, HandleUpdateInput, WorkflowInterceptorClassInput

from runtime.redaction import Redactor
from runtime.settings import Settings

TRACES_PATH = "/v1/traces"
FLUSH_TIMEOUT_MS = 5_000
# A W3C carrier holds traceparent, tracestate (at most 512 characters) and perhaps baggage.
MAX_CARRIER_ENTRIES = 8
MAX_CARRIER_VALUE = 8_192

_Input = TypeVar("_Input", HandleSignalInput, HandleQueryInput, HandleUpdateInput)


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
        self.exporter = ScrubbingExporter(OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint)))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        if install_global:
            trace.set_tracer_provider(self.provider)
        self.interceptor = CheckedTracingInterceptor(self.provider.get_tracer("airlock"))

    @property
    def interceptors(self) -> Sequence[TracingInterceptor]:
        """What a worker or client adds to its interceptors."""
        return [self.interceptor]

    def client(self, client: Client) -> Client:
        """`client` with the tracing interceptor, so what it starts begins a trace."""
        config = client.config()
        config["interceptors"] = [*config["interceptors"], self.interceptor]
        return Client(**config)

    def scrub_with(self, redactor: Redactor) -> None:
        """Scrub spans with `redactor` from now on (the worker knows its secrets after loading its files)."""
        self.exporter.redactor = redactor

    def shutdown(self) -> None:
        """Send what is still buffered and stop exporting (before the process exits)."""
        self.provider.force_flush(FLUSH_TIMEOUT_MS)
        self.provider.shutdown()


class CheckedTracingInterceptor(TracingInterceptor):
    """Temporal's `TracingInterceptor`, checking trace headers that come from outside first.

    Any client chooses the headers of the runs it starts and the signals, updates and queries it
    sends. Temporal's interceptor decodes them inside the workflow and fails the workflow task
    (on every retry) when one is not a JSON object of strings; here such a header is ignored.
    """

    def workflow_interceptor_class(
        self,
        input: WorkflowInterceptorClassInput,
    ) -> type[TracingWorkflowInboundInterceptor]:
        """The checking workflow interceptor (with the span-making function registered as usual)."""
        super().workflow_interceptor_class(input)
        return _CheckedWorkflowTracing


class _CheckedWorkflowTracing(TracingWorkflowInboundInterceptor):
    def _load_workflow_context_carrier(self) -> dict[str, Any] | None:
        if self._workflow_context_carrier is None:
            header = workflow.info().headers.get(self.header_key)
            self._workflow_context_carrier = carrier(header, self.payload_converter) if header else None
            if header and self._workflow_context_carrier is None:
                workflow.logger.warning("trace header of the run ignored: not a W3C trace context")
        return self._workflow_context_carrier

    async def handle_signal(self, input: HandleSignalInput) -> None:
        await super().handle_signal(self._checked(input))

    async def handle_query(self, input: HandleQueryInput) -> Any:
        return await super().handle_query(self._checked(input))

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        super().handle_update_validator(self._checked(input))

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        return await super().handle_update_handler(self._checked(input))

    def _checked(self, input: _Input) -> _Input:
        header = input.headers.get(self.header_key)
        if header is None or carrier(header, self.payload_converter) is not None:
            return input
        return dataclasses.replace(input, headers={k: v for k, v in input.headers.items() if k != self.header_key})


def carrier(header: Payload, converter: PayloadConverter) -> dict[str, Any] | None:
    """The trace context a header carries, or None when it is not a small JSON object of strings."""
    try:
        [value] = converter.from_payloads([header])
    except (RuntimeError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(value, dict) or not value or len(value) > MAX_CARRIER_ENTRIES:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_CARRIER_VALUE for k, v in value.items()):
        return None
    return value


def start_tracing(settings: Settings, *, service: str = "airlock") -> Tracing | None:
    """Tracing as the settings ask for it: None unless `AIRLOCK_TRACING=true`."""
    return Tracing(settings, service=service) if settings.tracing else None


class ScrubbingExporter(SpanExporter):
    """Passes spans on with the worker's secrets replaced in every text they carry.

    An error an MCP server or a provider answers becomes a span's status and exception event:
    one that echoes a token must not carry it to the collector.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor | None = None) -> None:
        """Export through `inner`, scrubbing with `redactor` (none: nothing to scrub yet)."""
        self.inner = inner
        self.redactor = redactor or Redactor()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Scrub, then export."""
        return self.inner.export([self._scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the inner exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the inner exporter."""
        return self.inner.force_flush(timeout_millis)

    def _scrubbed(self, span: ReadableSpan) -> ReadableSpan:
        scrub = self.redactor.scrub
        status = span.status
        return ReadableSpan(
            name=scrub(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            kind=span.kind,
            events=[Event(scrub(e.name), self._attributes(e.attributes), e.timestamp) for e in span.events],
            links=span.links,
            instrumentation_scope=span.instrumentation_scope,
            status=Status(status.status_code, scrub(status.description)) if status.description else status,
            start_time=span.start_time,
            end_time=span.end_time,
        )

    def _attributes(self, attributes: Attributes) -> dict[str, Any]:
        scrub = self.redactor.scrub
        out: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if isinstance(value, str):
                out[key] = scrub(value)
            elif isinstance(value, tuple | list):
                out[key] = tuple(scrub(v) if isinstance(v, str) else v for v in value)
            else:
                out[key] = value
        return out
