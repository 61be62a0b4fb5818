"""Temporal's runtime for this process: core logs into Airlock's log stream, and Prometheus metrics.

Temporal core serves one Prometheus endpoint (`AIRLOCK_METRICS_BIND`) with its own metrics and
every metric Airlock records through Temporal's metric meters (runtime/metrics.py). Tracing
is runtime/tracing.py.
"""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from runtime.metrics import HISTOGRAM_BUCKETS
from runtime.settings import Settings

# Core's records arrive here and pass the same handler (format, scrubber) as every other line.
CORE_LOGGER = "temporalio.core"


def build_runtime(settings: Settings) -> Runtime:
    """A Temporal runtime that forwards core logs to Python logging and, if asked, serves Prometheus.

    Without the log forwarding, core writes its warnings ([TMPRL1104] ...) to stdout itself, with
    ANSI colours. The Prometheus listener lives as long as the runtime does.
    """
    metrics = None
    if settings.metrics_bind:
        metrics = PrometheusConfig(bind_address=settings.metrics_bind, histogram_bucket_overrides=HISTOGRAM_BUCKETS)
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level=settings.temporal_core_log_level.upper(), other_level="ERROR"),
                # The target (which part of core) goes into the logger name, the fields into the message.
                forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER), prepend_target_on_message=False),
            ),
            metrics=metrics,
        )
    )


def install_runtime(settings: Settings) -> Runtime:
    """Make `build_runtime(settings)` the default Temporal runtime; call before any client connects."""
    runtime = build_runtime(settings)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime
