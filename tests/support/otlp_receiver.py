"""A loopback OTLP/HTTP trace receiver: decodes each `ExportTraceServiceRequest` with opentelemetry-proto.

    with OtlpReceiver() as receiver:
        ...  # point an exporter at receiver.endpoint
        spans = receiver.spans()

It answers what a collector answers (`ExportTraceServiceResponse`, protobuf) and keeps every
span it was sent, flattened, so tests can assert trace ids, parents and names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class Span:
    """One received span, its ids as lowercase hex (as in a `traceparent`)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status: str = ""
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace endpoint on 127.0.0.1, on a free port, in a thread."""

    def __init__(self) -> None:
        """Bind now; serve from `__enter__` until `__exit__`."""
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != TRACES_PATH or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # stderr is the worker's log stream in these tests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL to give an exporter (`AIRLOCK_OTLP_ENDPOINT`); it posts to `/v1/traces`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found: list[Span] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status=span.status.message,
                            events=tuple((e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events),
                        )
                    )
        with self._lock:
            self.requests += 1
            self._spans.extend(found)

    def spans(self) -> list[Span]:
        """Every span received so far."""
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
