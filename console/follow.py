"""`airlock run`: start an agent run and follow it — progress, who it waits for, the result.

The workflow type and task queue come from Airlock itself, so a misspelled type cannot leave a
newcomer's run `starting` forever; a run no worker picks up is reported as such.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from console.events import Feed
from console.progress import progress_by_call
from console.render import describe_call
from console.waiting import has_poller
from workflows.commands import YOU, Signer, answer_command, decision_command
from workflows.payloads import AgentRequest, InFlightCall, PendingApprovalView, RunStatus
from workflows.visible import visible, visible_lines

WORKFLOW_TYPE = "AgentWorkflow"
POLL_S = 0.25
# With nothing in flight the run's event stream says when to look again; this is the fallback
# (a worker of a release before run events publishes none).
IDLE_S = 2.0
# A run still `starting` after this long, with no worker polling its queue, is reported.
NO_WORKER_AFTER_S = 3.0
QUERY_TIMEOUT = timedelta(seconds=5)
FINAL_STATES = ("completed", "failed", "cancelled")


async def start(
    client: Client,
    task_queue: str,
    agent: str,
    text: str,
    *,
    requester: str,
    workflow_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start one `AgentWorkflow` run of `agent` on `task_queue`."""
    request = AgentRequest(agent=agent, input=text, requester=requester, context=context or {})
    return await client.start_workflow(
        WORKFLOW_TYPE,
        request,
        id=workflow_id or f"{agent}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
    )


@dataclass
class Progress:
    """What has been said about a run so far, so each change is said once."""

    say: Callable[[str], None]
    line: str = ""
    announced: set[str] = field(default_factory=set)
    # The last line said about each call in flight, so a call's progress is said when it moves.
    calls: dict[str, str] = field(default_factory=dict)
    # The last progress the server reported for each call.
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    warned_no_worker: bool = False
    # Who the printed commands sign as (alice with her dev key on `--dev`'s stack).
    signer: Signer = YOU

    def status(self, status: RunStatus) -> None:
        """One progress line whenever the state, turn or tool-call count changes."""
        line = f"  {status.state} · turn {status.turn} · {status.tool_calls} tool call(s)"
        if line != self.line:
            self.line = line
            self.say(line)

    def in_flight(self, calls: list[InFlightCall], progress: dict[str, dict[str, Any]]) -> None:
        """A line for each call in flight whenever its reported progress changes.

        A describe that shows no heartbeat (the activity just ended, or its next attempt has not
        beaten yet) does not take a call's progress back to "running".
        """
        for call in calls:
            reported = progress.get(call.call_id) or self.reported.get(call.call_id)
            if reported:
                self.reported[call.call_id] = reported
            line = "  ⋯ " + describe_call(call, reported)
            if self.calls.get(call.call_id) != line:
                self.calls[call.call_id] = line
                self.say(line)

    def pending(self, workflow_id: str, calls: list[PendingApprovalView]) -> None:
        """For each call newly waiting: what it is, whom it waits for, and the commands that decide it."""
        for call in calls:
            key = f"{call.call_id}/{call.arguments_sha256}"
            if call.question is not None:
                key += f"/{call.question.question_sha256}"
            if key in self.announced:
                continue
            self.announced.add(key)
            # Each line is made visible whole: a server's message or a model's argument cannot
            # break it into lines of its own, erase the command beside it, or reorder it.
            if call.kind == "input" and call.question is not None:
                self.say(visible(f"⏸ {call.server}.{call.tool} asks for input: {call.question.message}"))
                self.say(
                    visible(
                        "  answer: "
                        + answer_command(workflow_id, call.call_id, call.question.question_sha256, self.signer)
                    )
                )
                continue
            needed = call.approvals_needed - len(call.approved_by)
            by = f"; approved so far by {', '.join(call.approved_by)}" if call.approved_by else ""
            self.say(
                visible(
                    f"⏸ waiting for {needed} approver(s){by}: {call.server}.{call.tool} "
                    f"{json.dumps(call.arguments, ensure_ascii=False)}"
                )
            )
            approve = decision_command(workflow_id, call.call_id, call.arguments_sha256, "approve", self.signer)
            reject = decision_command(workflow_id, call.call_id, call.arguments_sha256, "reject", self.signer)
            self.say(visible("  approve: " + approve))
            self.say(visible("  reject:  " + reject))


async def follow(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    task_queue: str,
    say: Callable[[str], None],
    signer: Signer = YOU,
) -> tuple[bool, Any]:
    """Report the run's progress until it ends; return (completed, result or failure message)."""
    progress = Progress(say, signer=signer)
    started = time.monotonic()
    result_task: asyncio.Task[Any] = asyncio.create_task(handle.result())
    feed = Feed(client, handle.id)
    try:
        while not result_task.done():
            status = await _status(handle)
            if status is not None:
                progress.status(status)
                if status.in_flight:
                    progress.in_flight(status.in_flight, await progress_by_call(client, handle))
                if status.state == "awaiting_approval":
                    calls = await handle.query(
                        "pending_approvals", result_type=list[PendingApprovalView], rpc_timeout=QUERY_TIMEOUT
                    )
                    progress.pending(handle.id, calls)
            if (
                (status is None or status.state == "starting")
                and not progress.warned_no_worker
                and time.monotonic() - started > NO_WORKER_AFTER_S
                and not await has_poller(client, task_queue)
            ):
                progress.warned_no_worker = True
                say(
                    f"  no worker polls task queue {task_queue!r}: start one (`python worker.py`), "
                    "or check AIRLOCK_TASK_QUEUE"
                )
            # A call in flight reports progress by heartbeat (no event), and a run not yet picked up
            # has no stream: both are polled. Otherwise the run's next event wakes this loop.
            busy = status is None or status.state == "starting" or bool(status.in_flight)
            changed = asyncio.ensure_future(feed.changed())
            await asyncio.wait({result_task, changed}, timeout=POLL_S if busy else IDLE_S)
            changed.cancel()
        return True, result_task.result()
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            return False, f"{cause.type}: {cause.message}"
        return False, str(cause or err)
    finally:
        result_task.cancel()
        await feed.close()


async def _status(handle: WorkflowHandle[Any, Any]) -> RunStatus | None:
    try:
        status: RunStatus = await handle.query("status", result_type=RunStatus, rpc_timeout=QUERY_TIMEOUT)
    except (WorkflowQueryFailedError, RPCError):
        return None  # no worker has answered yet: the no-worker check says so
    return status


def say(line: str) -> None:
    """One line of progress on stdout, at once (hidden characters escaped)."""
    sys.stdout.write(visible_lines(line) + "\n")
    sys.stdout.flush()
