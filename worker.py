"""Airlock worker: read settings, connect to Temporal (or start the embedded one), run.

python worker.py             # connect to AIRLOCK_TEMPORAL_ADDRESS
python worker.py --dev       # start the bundled `temporal server start-dev` first, and the inbox
python worker.py --demo      # --dev, then run the support agent through an approval
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import openai
import structlog
from agents import set_tracing_disabled
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, Worker

from console import inbox
from console.demo import prepare as prepare_demo
from console.demo import walkthrough
from console.inbox import dev as dev_inbox
from mcp_servers.registry import McpPool, ServerConfig, load_servers, referenced_variables
from workflows import converter, devserver, logs, telemetry, tracing
from workflows.activities import AirlockActivities
from workflows.approvers import ApproversFile, check_approvers
from workflows.catalog import Catalog
from workflows.codec import load_keyring
from workflows.connection import connect
from workflows.errors import ConfigError
from workflows.metrics import AirlockMetrics, WaitingRuns
from workflows.models import ModelBackend, OpenAIModel, ScriptedModel, load_script
from workflows.pipelines import load_pipelines
from workflows.redaction import Redactor
from workflows.runtime import build_worker
from workflows.settings import PROJECT_ROOT, Settings
from workflows.startup import check_dependencies, ensure_search_attributes

log = structlog.get_logger("airlock.worker")

DEMO_SCRIPT = PROJECT_ROOT / "agents" / "scripted.json"
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def model_backend(settings: Settings) -> ModelBackend:
    """The model the `model` activity uses, chosen by settings; secrets stay on the worker."""
    provider = settings.resolved_provider()
    if provider == "openai":
        if settings.openai_api_key is None:
            raise ConfigError("AIRLOCK_MODEL_PROVIDER=openai needs OPENAI_API_KEY")
        client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            # Temporal retries model activities; a second retry loop inside would hide them.
            max_retries=0,
            timeout=settings.model_timeout.total_seconds(),
        )
        return OpenAIModel(client, settings.openai_api)
    if provider == "scripted":
        if settings.scripted_model_file is None:
            raise ConfigError("AIRLOCK_MODEL_PROVIDER=scripted needs AIRLOCK_SCRIPTED_MODEL_FILE")
        return ScriptedModel(load_script(settings.scripted_model_file))
    raise ConfigError(
        "no model configured: set OPENAI_API_KEY (optionally OPENAI_BASE_URL) for a real model, "
        "or AIRLOCK_SCRIPTED_MODEL_FILE for the offline scripted one"
    )


def known_secrets(settings: Settings, servers: Mapping[str, ServerConfig], environ: Mapping[str, str]) -> Iterator[str]:
    """Every secret value the worker holds: API keys, payload keys and the variables servers' headers expand."""
    for key in (settings.openai_api_key, settings.temporal_api_key):
        if key is not None:
            yield key.get_secret_value()
    if settings.codec_keys_file is not None:
        # As the keys file writes them: the only form in which one could be echoed back.
        yield from (base64.b64encode(key).decode() for key in load_keyring(settings.codec_keys_file).keys.values())
    for config in servers.values():
        for var in referenced_variables(config):
            if var in environ:
                yield environ[var]


def build_activities(settings: Settings, environ: Mapping[str, str] | None = None) -> AirlockActivities:
    """Load and check every configuration file; any mistake stops the worker here."""
    environ = os.environ if environ is None else environ
    # The Agents SDK would export its traces to OpenAI; Airlock's traces go over OTLP, where told to.
    set_tracing_disabled(True)
    servers = load_servers(settings.mcp_servers_file, environ)
    redactor = Redactor(known_secrets(settings, servers, environ))
    catalog = Catalog.load(settings.agents_dir, set(servers))
    pipelines = load_pipelines(settings.resolved_pipelines_dir(), catalog.agents)
    approvers = ApproversFile(settings.approvers_file) if settings.approvers_file is not None else None
    directory = approvers.current() if approvers is not None else None
    for name, spec in catalog.agents.items():
        path = catalog.files[name]
        check_approvers(spec.approval.approvers, directory, path=path, key="approval.approvers")
        check_approvers(spec.approval.escalate_to, directory, path=path, key="approval.escalate_to")
    if approvers is None:
        log.warning(
            "decisions are asserted, not proven: anyone who can signal a run can claim any approver "
            "name; set AIRLOCK_APPROVERS_FILE to require signed decisions"
        )
    return AirlockActivities(
        catalog,
        McpPool(servers, environ, on_secret=redactor.learn),
        model_backend(settings),
        max_result_bytes=settings.max_result_bytes,
        model_timeout_seconds=settings.model_timeout.total_seconds(),
        webhook_url=settings.approval_webhook_url,
        max_history_events=settings.max_history_events,
        pipelines=pipelines,
        approvers=approvers,
        redactor=redactor,
    )


@contextlib.asynccontextmanager
async def temporal(settings: Settings, dev: bool) -> AsyncIterator[Client]:
    """A Temporal client: the embedded dev server (`dev`) or the configured service."""
    if not dev:
        yield await connect(settings)
        return
    port = settings.temporal_address.rpartition(":")[2]
    db_file = settings.data_dir / "temporal.db"
    log.info(
        "starting embedded Temporal",
        address=settings.temporal_address,
        db=str(db_file),
        ui=f"http://127.0.0.1:{settings.dev_ui_port}",
    )
    env = await devserver.start(
        db_file=db_file, port=int(port), ui_port=settings.dev_ui_port, data_converter=converter.data_converter(settings)
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, activities: AirlockActivities, **options: Any
) -> AsyncIterator[Worker]:
    """Run a worker until the block ends, then shut it down gracefully and close MCP sessions.

    Airlock's metrics are recorded when the client's runtime serves metrics (AIRLOCK_METRICS_BIND).
    """
    options.setdefault("graceful_shutdown_timeout", GRACEFUL_SHUTDOWN)
    meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
    if meter is not MetricMeter.noop:
        options["interceptors"] = [*options.get("interceptors", ()), AirlockMetrics(activities.pool, meter)]
    worker = build_worker(client, settings.task_queue, activities, sandboxed=settings.workflow_sandbox, **options)
    task = asyncio.create_task(worker.run())
    log.info(
        "worker ready",
        task_queue=settings.task_queue,
        agents=sorted(activities.catalog.agents),
        pipelines=sorted(activities.pipelines),
    )
    try:
        yield worker
    finally:
        await worker.shutdown()
        await asyncio.gather(task, return_exceptions=True)
        await activities.pool.close()
        log.info("worker stopped")


async def preflight(client: Client, settings: Settings, activities: AirlockActivities) -> None:
    """Stop with the reason (and the fixing command) unless the namespace, model and servers are ready."""
    await ensure_search_attributes(client, settings.temporal_namespace)
    if client.data_converter.payload_codec is not None:
        log.info("payloads encrypted", keys_file=str(settings.codec_keys_file))
    await check_dependencies(activities.model_backend, activities.pool, activities.pool.servers)


async def serve(
    settings: Settings,
    activities: AirlockActivities,
    dev: bool,
    interceptors: Sequence[Interceptor] = (),
) -> None:
    """Check what the worker depends on, then run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with temporal(settings, dev) as client:
        await preflight(client, settings, activities)
        async with running_worker(client, settings, activities, interceptors=interceptors):
            sampling = None
            if settings.metrics_bind:
                meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
                waiting = WaitingRuns(client, settings.task_queue, activities.catalog.agents, meter)
                sampling = asyncio.create_task(waiting.run(stop))
            serving = None
            if dev:
                # The dev inbox: loopback only, a dev identity, decisions signed with the dev inbox key.
                app = inbox.make_app(client, settings, dev_identity=inbox.DEV_PERSON)
                serving = asyncio.create_task(inbox.serve(app, settings, stop, inbox.bind(settings)))
                log.info("inbox ready", url=inbox.inbox_url(settings), identity=f"dev:{inbox.DEV_PERSON}")
                dev_inbox.announce(settings)
            await stop.wait()
            log.info("shutting down", grace_seconds=GRACEFUL_SHUTDOWN.total_seconds())
            if serving is not None:
                await serving
            if sampling is not None:
                await sampling


async def demo(settings: Settings, activities: AirlockActivities, interceptors: Sequence[Interceptor] = ()) -> None:
    """Start everything, walk the support agent through a signed approval, stop."""
    async with (
        temporal(settings, dev=True) as client,
        running_worker(
            client,
            settings,
            activities,
            interceptors=interceptors,
        ),
    ):
        await walkthrough(client, settings)


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description="Airlock worker")
    parser.add_argument("--dev", action="store_true", help="start the bundled Temporal dev server")
    parser.add_argument(
        "--demo", action="store_true", help="start everything, run the support agent through an approval, exit"
    )
    args = parser.parse_args()
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    telemetry.install_runtime(settings)
    if args.demo:
        # Always offline and deterministic, and with alice's key as the only proof that counts.
        settings = prepare_demo(settings)
    elif args.dev and settings.resolved_provider() is None:
        # The embedded default: offline and deterministic when no key is set.
        settings = settings.model_copy(update={"model_provider": "scripted", "scripted_model_file": DEMO_SCRIPT})
    if args.dev and not args.demo:
        settings = dev_inbox.prepare(settings)
    code = 0
    tracer = tracing.start_tracing(settings, service="airlock-worker")
    if tracer is not None:
        log.info("tracing on", otlp_endpoint=tracing.traces_url(settings.otlp_endpoint) or "from OTEL_* settings")
    if settings.metrics_bind:
        log.info("metrics served", url=f"http://{settings.metrics_bind}/metrics")
    interceptors = tracer.interceptors if tracer is not None else ()
    try:
        activities = build_activities(settings)  # configuration errors stop us before any connection
        # Only now are the secrets known; from here on every log line is scrubbed of them.
        logs.configure(settings.log_level, settings.log_format, redactor=activities.redactor)
        if tracer is not None:
            tracer.scrub_with(activities.redactor)
        asyncio.run(
            demo(settings, activities, interceptors)
            if args.demo
            else serve(settings, activities, dev=args.dev, interceptors=interceptors)
        )
    except ConfigError as err:
        log.error("configuration error", error=str(err))
        code = 2
    finally:
        if tracer is not None:
            tracer.shutdown()  # the exit below skips the exporter's own flush at interpreter teardown
    # Everything is shut down by now. Skipping interpreter teardown avoids a known abort when
    # Temporal's Rust threads outlive finalization (temporalio/sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
