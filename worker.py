"""Airlock worker: read settings, connect to Temporal (or start the embedded one), run.

python worker.py             # connect to AIRLOCK_TEMPORAL_ADDRESS
python worker.py --dev       # start the bundled `temporal server start-dev` first, and the inbox
python worker.py --demo      # --dev, then run the support agent through an approval
python worker.py --check     # run every start-up check, print one line each, exit 0 when all pass
python worker.py --processes N   # N workflow-worker processes under one supervisor (docs/scale.md)

Configuration problems and a missing Temporal stop the worker, all named at once; a dependency that
is down (model endpoint, MCP server) does not: it is reported (runtime/health.py) while the
agents that do not use it run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

import openai
import structlog
from agents import set_tracing_disabled
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, Worker

from activities import output_schema
from activities.airlock_activities import AirlockActivities
from activities.approvers import ApproversFile, check_approvers
from activities.catalog import Catalog
from activities.models import ModelBackend, OpenAIModel, ScriptedModel, load_script
from activities.pins import PinFile
from activities.pipelines import load_pipelines
from console import inbox, signing
from console.demo import DemoLog, logs_to_file, walkthrough
from console.demo import prepare as prepare_demo
from console.inbox import dev as dev_inbox
from mcp_servers.client.registry import McpPool, ServerConfig, load_servers, referenced_variables
from mcp_servers.tomlfiles import ConfigError
from runtime import capacity, converter, devserver, health, logs, processes, telemetry, tracing
from runtime.codec import load_keyring
from runtime.connection import connect, with_profile
from runtime.metrics import AirlockMetrics, DependencyGauge, WaitingRuns
from runtime.plugin import AirlockPlugin
from runtime.redaction import Redactor
from runtime.settings import PROJECT_ROOT, Settings
from runtime.startup import Checks, ensure_search_attributes, load_settings, search_attributes_missing

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
    """Every secret value the worker holds: API keys, payload keys, the variables servers' headers or `env` use."""
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
    """Load and check every configuration file; the mistakes, all named in one `ConfigError`, stop the worker."""
    checks = Checks()
    activities = configure(settings, checks, environ)
    checks.stop_if_blocking()
    assert activities is not None
    return activities


def _approvers(settings: Settings, catalog: Catalog) -> ApproversFile | None:
    """The approvers file, with every name the agents' `[approval]` tables give checked against it."""
    approvers = ApproversFile(settings.approvers_file) if settings.approvers_file is not None else None
    directory = approvers.current() if approvers is not None else None
    for name, spec in catalog.agents.items():
        path = catalog.files[name]
        check_approvers(spec.approval.approvers, directory, path=path, key="approval.approvers")
        check_approvers(spec.approval.escalate_to, directory, path=path, key="approval.escalate_to")
    return approvers


def configure(settings: Settings, checks: Checks, environ: Mapping[str, str] | None = None) -> AirlockActivities | None:
    """Check every configuration file and the model's settings, each problem into `checks`; None if any."""
    environ = os.environ if environ is None else environ
    # The Agents SDK would export its traces to OpenAI; Airlock's traces go over OTLP, where told to.
    set_tracing_disabled(True)
    earlier = len(checks.blocking)
    servers = checks.run(
        "servers file",
        lambda: load_servers(settings.mcp_servers_file, environ),
        lambda found: f"{settings.mcp_servers_file} ({', '.join(sorted(found)) or 'no servers'})",
    )
    catalog = approvers = pipelines = None
    if servers is None:
        checks.skipped("agents", "checked once the servers file loads")
    else:
        known = set(servers)
        catalog = checks.run(
            "agents",
            lambda: Catalog.load(settings.agents_dir, known, settings.resolved_policy_dir()),
            lambda found: (
                f"{settings.agents_dir} ({', '.join(sorted(found.agents))})"
                + (f"; Cedar policies: {found.rules.directory}" if found.rules.directory else "")
            ),
        )
    if catalog is not None:
        agents = catalog
        pipelines = checks.run(
            "pipelines",
            lambda: load_pipelines(settings.resolved_pipelines_dir(), agents.agents),
            lambda found: f"{settings.resolved_pipelines_dir()} ({', '.join(sorted(found)) or 'none'})",
        )
        approvers = checks.run(
            "approvers",
            lambda: _approvers(settings, agents),
            lambda found: str(settings.approvers_file) if found is not None else "none: decisions are asserted",
        )
    if settings.codec_keys_file is not None:
        keys_file = settings.codec_keys_file
        checks.run("codec keys", lambda: load_keyring(keys_file), lambda ring: f"{keys_file} ({len(ring.keys)} keys)")
    lock_file = settings.resolved_tools_lock_file()
    pins = checks.run(
        "tool pins",
        lambda: PinFile(lock_file),
        lambda found: (
            f"{lock_file} ({sum(map(len, found.current().values()))} pinned)"
            if found.current()
            else f"{lock_file}: none (airlock mcp pin)"
        ),
    )
    model = checks.run("model", lambda: model_backend(settings), lambda _: str(settings.resolved_provider()))
    if len(checks.blocking) > earlier or servers is None or catalog is None or pipelines is None or model is None:
        return None
    redactor = Redactor(known_secrets(settings, servers, environ))
    if approvers is None:
        log.warning(
            "decisions are asserted, not proven: anyone who can signal a run can claim any approver "
            "name; set AIRLOCK_APPROVERS_FILE to require signed decisions"
        )
    return AirlockActivities(
        catalog,
        McpPool(servers, environ, on_secret=redactor.learn, output_checker=output_schema.CHECKER),
        model,
        max_result_bytes=settings.max_result_bytes,
        model_timeout_seconds=settings.model_timeout.total_seconds(),
        webhook_url=settings.approval_webhook_url,
        max_history_events=settings.max_history_events,
        pipelines=pipelines,
        approvers=approvers,
        redactor=redactor,
        # On `--dev` (its approvers file), printed commands carry alice's dev key.
        printed_signer=signing.printed_signer(settings, worker=True),
        pins=pins,
    )


def dev_ports(settings: Settings, *, inbox: bool) -> dict[str, tuple[int, str]]:
    """The loopback ports `--dev` (with the inbox) or `--demo` (without) serve, and the setting moving each."""
    ports = {
        "Temporal gRPC": (int(settings.temporal_address.rpartition(":")[2]), "AIRLOCK_TEMPORAL_ADDRESS"),
        "Temporal Web UI": (settings.dev_ui_port, "AIRLOCK_DEV_UI_PORT"),
    }
    if inbox:
        ports["inbox"] = (settings.inbox_port, "AIRLOCK_INBOX_PORT")
    return ports


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
    try:
        env = await devserver.start(
            db_file=db_file,
            port=int(port),
            ui_port=settings.dev_ui_port,
            data_converter=converter.data_converter(settings),
        )
    except RuntimeError as err:
        raise ConfigError(f"the embedded Temporal did not start: {err}") from None
    try:
        yield env.client
    finally:
        await env.shutdown()


def _meter(client: Client) -> MetricMeter:
    """The meter of the client's runtime: a real one when metrics are served (AIRLOCK_METRICS_BIND)."""
    return (client.service_client.config.runtime or Runtime.default()).metric_meter


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, activities: AirlockActivities, **options: Any
) -> AsyncIterator[Worker]:
    """Run a worker until the block ends, then shut it down gracefully and close MCP sessions.

    Airlock's metrics are recorded when the client's runtime serves metrics (AIRLOCK_METRICS_BIND).
    """
    options.setdefault("graceful_shutdown_timeout", GRACEFUL_SHUTDOWN)
    meter = _meter(client)
    if meter is not MetricMeter.noop:
        # The scripted model plays whatever model an agent file names: its tokens are `scripted`'s.
        label = "scripted" if settings.resolved_provider() == "scripted" else None
        metrics = AirlockMetrics(activities.pool, meter, model_label=label)
        options["interceptors"] = [*options.get("interceptors", ()), metrics]
    plugin = AirlockPlugin(
        activities,
        data_converter=client.data_converter,
        interceptors=options.pop("interceptors", ()),
        sandboxed=settings.workflow_sandbox,
    )
    cache = capacity.cache_size(settings.max_cached_workflows, settings.worker_processes)
    options.setdefault("max_cached_workflows", cache.max_cached_workflows)
    worker = Worker(client, task_queue=settings.task_queue, plugins=[plugin], **options)
    task = asyncio.create_task(worker.run())
    log.info(
        "worker ready",
        task_queue=settings.task_queue,
        agents=sorted(activities.catalog.agents),
        pipelines=sorted(activities.pipelines),
        max_cached_workflows=options["max_cached_workflows"],
        cache_from=cache.source,
        cache_bound_mib=cache.bound_bytes // 2**20,
    )
    try:
        yield worker
    finally:
        await worker.shutdown()
        await asyncio.gather(task, return_exceptions=True)
        await activities.pool.close()
        log.info("worker stopped")


async def watch_dependencies(client: Client, activities: AirlockActivities) -> health.DependencyHealth:
    """Probe the model endpoint and every MCP server once; each one down is logged, none stops the worker."""
    watched = health.DependencyHealth(
        activities.model_backend,
        activities.pool,
        gauge=DependencyGauge(_meter(client)),
        scrub=activities.redactor.scrub,
    )
    await watched.check()
    return watched


async def preflight(client: Client, settings: Settings, activities: AirlockActivities) -> health.DependencyHealth:
    """Stop (with the fixing command) unless the namespace is ready; probe the model and servers."""
    await ensure_search_attributes(client, settings.temporal_namespace)
    _say_encrypted(client, settings)
    return await watch_dependencies(client, activities)


def _say_encrypted(client: Client, settings: Settings) -> None:
    if client.data_converter.payload_codec is not None:
        log.info("payloads encrypted", keys_file=str(settings.codec_keys_file))


async def _search_attributes(client: Client, settings: Settings, checks: Checks) -> None:
    """Create the search attributes when everything else passed; otherwise (or for `--check`) only look."""
    namespace = settings.temporal_namespace
    if checks.blocking:
        missing = await search_attributes_missing(client, namespace)
        if missing is None:
            checks.ok("search attributes", f"namespace {namespace}")
        else:
            checks.problem("search attributes", missing)
        return
    await checks.run_async(
        "search attributes",
        lambda: ensure_search_attributes(client, namespace),
        lambda created: f"namespace {namespace}" + (f" (created {', '.join(created)})" if created else ""),
    )


@contextlib.asynccontextmanager
async def started(
    settings: Settings,
    activities: AirlockActivities | None,
    checks: Checks,
    *,
    dev: bool,
    interceptors: Sequence[Interceptor] = (),
    need_every_dependency: bool = False,
) -> AsyncIterator[tuple[Client, health.DependencyHealth]]:
    """Temporal and a running worker, once every check that must pass has; every problem named at once."""
    async with contextlib.AsyncExitStack() as stack:
        client: Client | None = None
        if dev and checks.blocking:
            checks.skipped("temporal", "the embedded server starts once the problems above are fixed")
        else:
            client = await checks.run_async(
                "temporal",
                lambda: stack.enter_async_context(temporal(settings, dev)),
                lambda _: f"{settings.temporal_address} namespace {settings.temporal_namespace}",
            )
        if client is not None:
            await _search_attributes(client, settings, checks)
        sock = None
        if settings.health_bind:
            sock = checks.run("health endpoint", lambda: health.bind(settings.health_bind), lambda _: "/healthz")
            if sock is not None:
                stack.callback(sock.close)
        checks.stop_if_blocking()
        assert client is not None and activities is not None
        _say_encrypted(client, settings)
        # The probes open sessions (stdio children) that must end even if the worker never starts.
        stack.push_async_callback(activities.pool.close)
        watched = await watch_dependencies(client, activities)
        if need_every_dependency and watched.down:
            raise ConfigError(
                "the demo needs every dependency: " + "; ".join(f"{d.kind} {d.name!r}: {d.why}" for d in watched.down)
            )
        await stack.enter_async_context(running_worker(client, settings, activities, interceptors=interceptors))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(watched.run(stop, settings.dependency_check_interval))]
        if sock is not None:
            tasks.append(asyncio.create_task(health.serve(watched, sock, stop)))
            log.info("health served", url=f"http://{settings.health_bind}/healthz")

        async def finished() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)

        # Unwound in reverse: stop the probes and /healthz, then the worker, then Temporal.
        stack.push_async_callback(finished)
        stack.callback(stop.set)
        yield client, watched


async def serve(
    settings: Settings,
    activities: AirlockActivities | None,
    dev: bool,
    interceptors: Sequence[Interceptor] = (),
    checks: Checks | None = None,
) -> None:
    """Check what the worker depends on, then run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with started(settings, activities, checks or Checks(), dev=dev, interceptors=interceptors) as (client, _):
        assert activities is not None
        sampling = None
        if settings.metrics_bind:
            waiting = WaitingRuns(client, settings.task_queue, activities.catalog.agents, _meter(client))
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


async def demo(
    settings: Settings,
    activities: AirlockActivities | None,
    interceptors: Sequence[Interceptor] = (),
    checks: Checks | None = None,
) -> None:
    """Start everything (the same checks as the worker; every dependency must answer), walk the support
    agent through a signed approval, stop."""
    async with started(
        settings, activities, checks or Checks(), dev=True, interceptors=interceptors, need_every_dependency=True
    ) as (client, _):
        await walkthrough(client, settings)


def profiled(settings: Settings, checks: Checks) -> Settings:
    """`settings` completed from the Temporal profile (runtime/connection.py); a bad one is a problem named."""
    try:
        return with_profile(settings)
    except ConfigError as err:
        checks.problem("temporal profile", str(err))
        return settings


async def check(settings: Settings, checks: Checks, environ: Mapping[str, str] | None = None) -> Checks:
    """Every start-up check, creating nothing: settings (already in `checks`), files, model, Temporal,
    search attributes, the model endpoint and each MCP server."""
    settings = profiled(settings, checks)
    activities = configure(settings, checks, environ)
    try:
        client = await checks.run_async(
            "temporal",
            lambda: connect(settings),
            lambda _: f"{settings.temporal_address} namespace {settings.temporal_namespace}",
        )
        if client is None:
            checks.skipped("search attributes", "checked once Temporal answers")
        else:
            missing = await search_attributes_missing(client, settings.temporal_namespace)
            if missing is None:
                checks.ok("search attributes", f"namespace {settings.temporal_namespace}")
            else:
                checks.problem("search attributes", missing)
        if activities is None:
            checks.skipped(
                "dependencies", "the model endpoint and MCP servers are probed once the problems above are fixed"
            )
            return checks
        watched = health.DependencyHealth(activities.model_backend, activities.pool, scrub=activities.redactor.scrub)
        await watched.check()
        for dependency in watched.dependencies:
            model = dependency.kind == "model"
            name = "model endpoint" if model else f"mcp server {dependency.name}"
            detail = dependency.why or (dependency.name if model else "")
            if dependency.up:
                checks.ok(name, detail, dependency=True)
            else:
                checks.problem(name, detail, dependency=True)
        return checks
    finally:
        if activities is not None:
            await activities.pool.close()


def print_checks(checks: Checks, output: str) -> int:
    """Print one line per check (or JSON) on stdout; 0 when every check passed, else 1."""
    if output == "json":
        sys.stdout.write(
            json.dumps({"ok": checks.passed, "checks": [c.as_json() for c in checks.items]}, indent=2) + "\n"
        )
    else:
        sys.stdout.write("".join(c.line() + "\n" for c in checks.items))
        problems = sum(c.status == "problem" for c in checks.items)
        sys.stdout.write("all checks passed\n" if checks.passed else f"{problems} problem(s)\n")
    sys.stdout.flush()
    return 0 if checks.passed else 1


def run_worker(
    settings: Settings, checks: Checks, *, dev: bool = False, demo_mode: bool = False, demo_log: DemoLog | None = None
) -> int:
    """Load the configuration, then serve (or walk through the demo) until stopped; the exit code."""
    code = 0
    tracer = tracing.start_tracing(settings, service="airlock-worker")
    if tracer is not None:
        log.info("tracing on", otlp_endpoint=tracing.traces_url(settings.otlp_endpoint) or "from OTEL_* settings")
    if settings.metrics_bind:
        log.info("metrics served", url=f"http://{settings.metrics_bind}/metrics")
    interceptors = tracer.interceptors if tracer is not None else ()
    try:
        activities = configure(settings, checks)  # configuration problems stop us after Temporal is checked too
        if activities is not None:
            # Only now are the secrets known; from here on every log line is scrubbed of them.
            logs.configure(settings.log_level, settings.log_format, redactor=activities.redactor)
            _echo_errors(demo_log, activities.redactor)
            if tracer is not None:
                tracer.scrub_with(activities.redactor)
        asyncio.run(
            demo(settings, activities, interceptors, checks)
            if demo_mode
            else serve(settings, activities, dev=dev, interceptors=interceptors, checks=checks)
        )
    except ConfigError as err:
        log.error("configuration error", error=str(err), problems=[f"{c.name}: {c.detail}" for c in checks.blocking])
        code = 2
    finally:
        if tracer is not None:
            tracer.shutdown()  # the exit below skips the exporter's own flush at interpreter teardown
    return code


def supervise(settings: Settings, checks: Checks) -> int:
    """`--processes N`: check the configuration once, then run N worker processes (runtime/processes.py)."""
    activities = configure(settings, checks)
    if activities is None:
        log.error("configuration error", problems=[f"{c.name}: {c.detail}" for c in checks.blocking])
        return 2
    # Each process opens its own sessions; this pool only served the check.
    asyncio.run(activities.pool.close())
    return processes.Supervisor(worker_process, settings, settings.worker_processes).run()


def worker_process(settings: Settings, index: int) -> None:
    """One of `--processes N`, in a process of its own: its logs, its Temporal runtime, its worker."""
    logs.configure(settings.log_level, settings.log_format)
    telemetry.install_runtime(settings)
    log.info("worker process starting", pid=os.getpid())
    _exit(run_worker(settings, Checks()))


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description="Airlock worker")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dev", action="store_true", help="start the bundled Temporal dev server")
    mode.add_argument(
        "--demo", action="store_true", help="start everything, run the support agent through an approval, exit"
    )
    mode.add_argument(
        "--check", action="store_true", help="run every start-up check, print one line each; exit 0 when all pass"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="--check output")
    parser.add_argument(
        "--processes",
        type=_count,
        metavar="N",
        help="workflow-worker processes to run (default: AIRLOCK_WORKER_PROCESSES, 1); one per core",
    )
    args = parser.parse_args()
    if (args.processes or 1) > 1 and (args.dev or args.demo or args.check):
        parser.error("--processes runs workers against a Temporal service: not with --dev, --demo or --check")
    checks = Checks()
    settings = load_settings(checks)
    if args.processes is not None:
        settings = settings.model_copy(update={"worker_processes": args.processes})
    if args.dev or args.demo or args.check:  # the embedded server lives in one process
        settings = settings.model_copy(update={"worker_processes": 1})
    if not (args.dev or args.demo or args.check):  # the embedded server needs no profile; `check` applies it
        settings = profiled(settings, checks)
    # On a terminal the demo's walkthrough gets the screen; its log goes to a file it names.
    demo_log = logs_to_file(settings) if args.demo else None
    logs.configure(settings.log_level, settings.log_format)
    _echo_errors(demo_log)
    if args.check:
        # Core's lines go into the log stream (stderr), never onto the report; no metrics listener.
        telemetry.install_runtime(settings.model_copy(update={"metrics_bind": ""}))
        _exit(print_checks(asyncio.run(check(settings, checks)), args.output))
    if settings.worker_processes > 1:
        _exit(supervise(settings, checks))
    telemetry.install_runtime(settings)
    busy: list[str] = []
    if args.dev or args.demo:
        # Before anything is written or started: never attach to, or rewrite files for, another server.
        busy = devserver.busy_ports(dev_ports(settings, inbox=args.dev))
        for problem in busy:
            checks.problem("ports", problem)
    if args.demo and not busy:
        # Always offline and deterministic, and with alice's key as the only proof that counts.
        settings = prepare_demo(settings)
    elif args.dev and settings.resolved_provider() is None:
        # The embedded default: offline and deterministic when no key is set.
        settings = settings.model_copy(update={"model_provider": "scripted", "scripted_model_file": DEMO_SCRIPT})
    if args.dev and not busy:
        settings = dev_inbox.prepare(settings)
    code = run_worker(settings, checks, dev=args.dev, demo_mode=args.demo, demo_log=demo_log)
    if demo_log is not None and code != 0:
        demo_log.tell(f"the demo stopped; its log is in {demo_log.path}")
    _exit(code)


def _count(text: str) -> int:
    """A number of processes: a whole number from 1 to 256."""
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1-256)")
    return int(text)


def _echo_errors(demo_log: DemoLog | None, redactor: Redactor | None = None) -> None:
    """With the demo's log in a file, still show its errors on the terminal."""
    if demo_log is not None:
        logging.getLogger().addHandler(logs.error_echo(demo_log.stream(), redactor=redactor))


def _exit(code: int) -> NoReturn:
    """Exit now: everything is shut down by now."""
    # Skipping interpreter teardown avoids a known abort when Temporal's Rust threads outlive
    # finalization (temporalio/sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
