"""`airlock check`: every start-up check the worker makes, one line each; exit 0 only when all pass.

The same checks as `python worker.py --check` (worker.py owns them), with the CLI's `--address`
and `--namespace`; nothing is created or started. For deploy pipelines and for people.
"""

from __future__ import annotations

import argparse

from runtime import logs, telemetry
from runtime.startup import Checks, load_settings


async def cmd_check(args: argparse.Namespace) -> int:
    """Run every start-up check and print them (a table, or JSON with `-o json`)."""
    # The worker's own module: the composition root holds the one list of checks it runs at start.
    import worker

    checks = Checks()
    overrides = {"temporal_address": args.address, "temporal_namespace": args.namespace}
    settings = load_settings(checks, **{key: value for key, value in overrides.items() if value is not None})
    logs.configure(settings.log_level, settings.log_format)
    # Temporal core's lines join the log stream on stderr, never the report; no metrics listener.
    telemetry.install_runtime(settings.model_copy(update={"metrics_bind": ""}))
    return worker.print_checks(await worker.check(settings, checks), args.output)
