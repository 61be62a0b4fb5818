"""`airlock run`, `pending`, `show` and `audit`: start a run, and see runs and what waits in them."""

from __future__ import annotations

import argparse
import asyncio
import shlex
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from console import events, follow, render, signing, waiting
from console.errors import CliError
from console.progress import progress_by_call
from console.temporal import client_for, describe, failure, query, settings_for
from console.terminal import complain, emit, write
from workflows.payloads import RunStatus
from workflows.visible import visible


async def cmd_run(args: argparse.Namespace) -> int:
    """`airlock run`: start a run; with --follow, report it until it ends (exit 1 if it failed).

    With `AIRLOCK_TRACING=true` the run's trace starts here, at the client's start (following it
    is not traced: every status poll would be a trace of its own).
    """
    client = await client_for(args)
    if not args.settings.tracing:
        return await _run(args, client, client)
    # Loaded only when asked for: the OpenTelemetry SDK and exporter add a fifth to every start.
    from runtime import tracing

    tracer = tracing.Tracing(args.settings, service="airlock-cli")
    try:
        return await _run(args, client, tracer.client(client))
    finally:
        tracer.shutdown()


async def _run(args: argparse.Namespace, client: Client, starter: Client) -> int:
    try:
        started = await follow.start(
            starter,
            args.settings.task_queue,
            args.agent,
            args.input,
            requester=args.requester,
            workflow_id=args.workflow_id,
        )
    except RPCError as err:
        raise CliError(f"could not start the run: {err.message}") from None
    handle: WorkflowHandle[Any, Any] = WorkflowHandle(
        client,
        started.id,
        result_run_id=started.result_run_id,
        first_execution_run_id=started.first_execution_run_id,
    )
    if not args.follow:
        emit(
            args,
            {"workflow_id": handle.id, "run_id": handle.result_run_id},
            f"started {handle.id} (follow it: {shlex.join(['airlock', 'show', handle.id])})",
        )
        return 0
    quiet = args.output == "json"
    if not quiet:
        write(f"▶ started {handle.id} (agent {args.agent}, task queue {args.settings.task_queue})")
    completed, result = await follow.follow(
        client,
        handle,
        args.settings.task_queue,
        (lambda _line: None) if quiet else follow.say,
        signing.printed_signer(args.settings),
    )
    if quiet:
        emit(args, {"workflow_id": handle.id, "completed": completed, "result": result}, "")
    elif completed:
        write(f"■ completed: {result.get('output', '')}")
    else:
        write(visible(f"✘ failed: {result}"))
    return 0 if completed else 1


async def cmd_pending(args: argparse.Namespace) -> int:
    """Every call waiting across all runs (console.waiting lists them for the inbox too)."""
    client = await client_for(args)

    def skipped(workflow_id: str, why: str) -> None:
        complain(f"airlock: skipped {workflow_id}: {why}")

    try:
        calls = await waiting.waiting_calls(
            client, agent=args.agent, wait=args.wait, on_skip=skipped, signer=signing.printed_signer(settings_for(args))
        )
    except waiting.ListingError as err:
        raise CliError(str(err)) from None
    emit(args, calls, render.pending_table(calls, datetime.now(UTC)))
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    """One run: its state, its pending calls with full arguments and hash, and its audit."""
    client = await client_for(args)
    handle = client.get_workflow_handle(args.workflow_id)
    description = await describe(handle)
    kind = description.workflow_type
    state = render.state_of(description)
    # Queries are answered by a worker: with none polling the run's queue, each would time out
    # with a different transport error. Say so once, at once.
    polled = await waiting.has_poller(client, description.task_queue)
    failed = await failure(client, description)
    if not polled:
        if failed is None:
            raise CliError(
                f"workflow {args.workflow_id} is {state}, but no worker polls task "
                f"queue {description.task_queue!r}: start one (`python worker.py`), or check AIRLOCK_TASK_QUEUE"
            )
        # Why it failed is in the history: no worker is needed to say that much.
        emit(
            args,
            {"workflow_id": args.workflow_id, "type": kind, "state": state, "failure": failed},
            render.ended_text(args.workflow_id, state, failed, description.task_queue),
        )
        return 0
    if kind == "PipelineWorkflow":
        return await _show_pipeline(args, handle)
    status, calls, audit = await asyncio.gather(
        query(handle, "status", args.wait, dict),
        query(handle, "pending_approvals", args.wait),
        query(handle, "audit", args.wait),
    )
    if args.call_id is not None:
        calls = [c for c in calls if c.get("call_id") == args.call_id]
        audit = [e for e in audit if e.get("call_id") == args.call_id]
        if not calls and not audit:
            raise CliError(f"workflow {args.workflow_id} has no call {args.call_id!r}")
    for call in calls:
        waiting.add_commands(args.workflow_id, call, signing.printed_signer(settings_for(args)))
    in_flight = render.known(RunStatus, status).in_flight
    progress = await progress_by_call(client, handle) if in_flight else {}
    emit(
        args,
        {
            "workflow_id": args.workflow_id,
            "type": kind,
            "status": status,
            "failure": failed,
            "pending": calls,
            "progress": progress,
            "audit": audit,
        },
        render.run_text(args.workflow_id, status, failed, progress, calls, audit, datetime.now(UTC)),
    )
    if getattr(args, "follow", False):
        await _follow_events(args, client)
    return 0


async def _follow_events(args: argparse.Namespace, client: Client) -> None:
    """`show --follow`: the run's events as they happen (from `--after`, else from now) until it ends.

    A line each (`-o json`: one JSON object a line); a dropped connection resumes from the next offset.
    """
    after = args.after if args.after is not None else await events.current_offset(client, args.workflow_id)
    if args.output != "json":
        write(f"following {args.workflow_id} from event #{after} (Ctrl-C stops)")
    while True:
        try:
            async for event in events.subscribe(client, args.workflow_id, after=after):
                after = event.seq + 1
                write(event.model_dump_json() if args.output == "json" else events.event_line(event))
            return
        except events.DROPPED as err:
            complain(f"airlock: lost the run's events ({err}); resuming from #{after}")
            await asyncio.sleep(events.RETRY_S)
        except events.REFUSED as err:
            raise CliError(f"the run's events could not be read (a worker from before run events?): {err}") from None


async def _show_pipeline(args: argparse.Namespace, handle: WorkflowHandle[Any, Any]) -> int:
    status = await query(handle, "status", args.wait, dict)
    text = render.pipeline_text(args.workflow_id, status)
    emit(args, {"workflow_id": args.workflow_id, "type": "PipelineWorkflow", "status": status}, text)
    return 0


async def cmd_audit(args: argparse.Namespace) -> int:
    """The run's audit trail as a table."""
    client = await client_for(args)
    handle = client.get_workflow_handle(args.workflow_id)
    audit = await query(handle, "audit", args.wait)
    emit(args, audit, render.audit_text(audit))
    return 0
