"""Temporal's own telemetry for this process: core logs into Airlock's log stream (and metrics)."""

from __future__ import annotations

import logging

from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from workflows.settings import Settings

# Core's records arrive here and pass the same handler (format, scrubber) as every other line.
CORE_LOGGER = "temporalio.core"


def install_runtime(settings: Settings) -> Runtime:
    """Make the default Temporal runtime forward core logs to Python logging; call before any client.

    Without this, core writes its warnings ([TMPRL1104] ...) to stdout itself, with ANSI colours.
    """
    runtime = Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level=settings.temporal_core_log_level.upper(), other_level="ERROR"),
            # The target (which part of core) goes into the logger name, the fields into the message.
            forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER), prepend_target_on_message=False),
        ),
    ))
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime
