"""Every call waiting for a decision, across all runs: what `airlock pending` and the inbox list.

Visibility finds the runs marked `AirlockState="awaiting_approval"`; each run's own
`pending_approvals` query is the authority on what waits and its hash (pipelines' children are
runs of their own, so they are listed too; the pipeline itself is not marked waiting).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from console.errors import ConsoleError
from workflows.commands import YOU, Signer, answer_command, decision_command
from workflows.payloads import PendingApprovalView

WAITING_QUERY = 'AirlockState="awaiting_approval" AND ExecutionStatus="Running"'
# Bounds how many runs are asked at once: ten thousand waiting runs listed in seconds (a cached
# run answers in a millisecond or two), without flooding the frontend or the answering workers.
QUERY_CONCURRENCY = 50
# Runs read from visibility per page; the first page's runs are asked while the next is read.
PAGE_SIZE = 500
# Agent names are checked by the catalog; this only keeps the visibility query well-formed.
AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ListingError(ConsoleError):
    """Visibility could not list the waiting runs; the message says why."""


def waiting_query(agent: str | None = None) -> str:
    """The visibility query for runs waiting on a decision, optionally of one agent."""
    if agent is None:
        return WAITING_QUERY
    if not AGENT_NAME.match(agent):
        raise ValueError(f"{agent!r} is not an agent name")
    return WAITING_QUERY + f' AND AirlockAgent="{agent}"'


async def has_poller(client: Client, task_queue: str) -> bool:
    """Whether any worker has polled `task_queue` for workflow tasks lately."""
    reply = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(reply.pollers)


@dataclass
class _Queues:
    """What is known of each task queue while listing: polled or not, answering or not."""

    client: Client
    polled: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)

    async def why_not(self, task_queue: str) -> str | None:
        """Why runs on `task_queue` are not asked (no worker polls it, or one timed out), or None."""
        if task_queue not in self.polled:
            self.polled[task_queue] = asyncio.ensure_future(self._polled(task_queue))
        if not await self.polled[task_queue]:
            return f"no worker polls task queue {task_queue!r} to answer pending_approvals"
        if task_queue in self.silent:
            return f"a worker of task queue {task_queue!r} did not answer in time; not asked"
        return None

    async def _polled(self, task_queue: str) -> bool:
        try:
            return await has_poller(self.client, task_queue)
        except RPCError:
            return True  # cannot tell: ask the runs, each within its timeout


async def waiting_calls(
    client: Client,
    *,
    agent: str | None = None,
    wait: timedelta = timedelta(seconds=10),
    on_skip: Callable[[str, str], None] | None = None,
    signer: Signer = YOU,
    page_size: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Every pending call of every waiting run, oldest first, each with its workflow id and commands.

    Each row is the run's `PendingApprovalView` as JSON (a newer worker's extra fields dropped),
    led by `workflow_id` and `run_id` and followed by the commands that decide it. Visibility is read
    a page at a time while the runs already listed are asked (at most QUERY_CONCURRENCY at once).
    Runs on a task queue no worker polls are skipped at once, as are the rest of a queue's runs once
    one of its queries timed out: neither makes the listing wait out `wait` per run.
    """
    listed: asyncio.Queue[tuple[str, str | None, str] | None] = asyncio.Queue(maxsize=2 * QUERY_CONCURRENCY)
    queues = _Queues(client)
    found: list[dict[str, Any]] = []
    failed: list[RPCError] = []

    def skip(workflow_id: str, why: str) -> list[dict[str, Any]]:
        if on_skip is not None:
            on_skip(workflow_id, why)
        return []

    async def ask(workflow_id: str, run_id: str | None, task_queue: str) -> list[dict[str, Any]]:
        why = await queues.why_not(task_queue)
        if why is not None:
            return skip(workflow_id, why)
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            calls = await handle.query("pending_approvals", result_type=list[PendingApprovalView], rpc_timeout=wait)
        except WorkflowQueryFailedError as err:
            return skip(workflow_id, f"cannot answer pending_approvals: {err}")
        except ValueError as err:  # pydantic's ValidationError: a reply that is not the view
            return skip(workflow_id, f"cannot read pending_approvals: {err.__class__.__name__}")
        except RPCError as err:
            if err.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                queues.silent.add(task_queue)
            # A run that ended (or was reset) since it was listed has nothing to decide.
            return [] if err.status == RPCStatusCode.NOT_FOUND else skip(workflow_id, err.message)
        return [{"workflow_id": workflow_id, "run_id": run_id, **call.model_dump(mode="json")} for call in calls]

    async def lister() -> None:
        try:
            async for execution in client.list_workflows(waiting_query(agent), page_size=page_size):
                await listed.put((execution.id, execution.run_id, execution.task_queue))
        except RPCError as err:
            failed.append(err)
        finally:
            for _ in range(QUERY_CONCURRENCY):
                await listed.put(None)

    async def asker() -> None:
        while (item := await listed.get()) is not None:
            if not failed:
                found.extend(await ask(*item))

    await asyncio.gather(lister(), *(asker() for _ in range(QUERY_CONCURRENCY)))
    if failed:
        raise ListingError(f"cannot list waiting runs: {failed[0].message}") from None
    calls = sorted(found, key=lambda c: (str(c.get("requested_at")), c["workflow_id"], c["call_id"]))
    for call in calls:
        add_commands(call["workflow_id"], call, signer)
    return calls


def add_commands(workflow_id: str, call: dict[str, Any], signer: Signer = YOU) -> None:
    """Add the shell-quoted, hash-bound approve/reject commands (or, for an input request, `answer`)."""
    question = call.get("question")
    if call.get("kind") == "input" and isinstance(question, dict):
        sha = str(question.get("question_sha256"))
        call["answer_command"] = answer_command(workflow_id, call["call_id"], sha, signer)
        return
    for decision in ("approve", "reject"):
        sha = call["arguments_sha256"]
        call[f"{decision}_command"] = decision_command(workflow_id, call["call_id"], sha, decision, signer)


def age(delta: timedelta) -> str:
    """A duration as people read it: `42s`, `3m5s`, `2h10m`, `1d4h`."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def until(deadline: datetime | None, now: datetime) -> str:
    """How long until `deadline` (`in 5m0s`), or how long it is overdue; `-` for none."""
    if deadline is None:
        return "-"
    if deadline <= now:
        return f"overdue {age(now - deadline)}"
    return f"in {age(deadline - now)}"
