"""Every call waiting for a decision, across all runs: what `airlock pending` and the inbox list.

Visibility finds the runs marked `AirlockState="awaiting_approval"`; each run's own
`pending_approvals` query is the authority on what waits and its hash (pipelines' children are
runs of their own, so they are listed too; the pipeline itself is not marked waiting).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.commands import YOU, Signer, answer_command, decision_command

WAITING_QUERY = 'AirlockState="awaiting_approval" AND ExecutionStatus="Running"'
# Bounds how many runs are asked at once: enough to list hundreds of waiting runs in a second
# or two, without flooding the frontend or the workers that answer the queries.
QUERY_CONCURRENCY = 20
# Agent names are checked by the catalog; this only keeps the visibility query well-formed.
AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ListingError(Exception):
    """Visibility could not list the waiting runs; the message says why."""


def waiting_query(agent: str | None = None) -> str:
    """The visibility query for runs waiting on a decision, optionally of one agent."""
    if agent is None:
        return WAITING_QUERY
    if not AGENT_NAME.match(agent):
        raise ValueError(f"{agent!r} is not an agent name")
    return WAITING_QUERY + f' AND AirlockAgent="{agent}"'


async def waiting_calls(
    client: Client,
    *,
    agent: str | None = None,
    wait: timedelta = timedelta(seconds=10),
    on_skip: Callable[[str, str], None] | None = None,
    signer: Signer = YOU,
) -> list[dict[str, Any]]:
    """Every pending call of every waiting run, oldest first, each with its workflow id and commands."""
    try:
        runs = [(execution.id, execution.run_id) async for execution in client.list_workflows(waiting_query(agent))]
    except RPCError as err:
        raise ListingError(f"cannot list waiting runs: {err.message}") from None
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def ask(workflow_id: str, run_id: str | None) -> list[dict[str, Any]]:
        async with gate:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            try:
                calls: list[dict[str, Any]] = await handle.query(
                    "pending_approvals", result_type=list, rpc_timeout=wait
                )
            except WorkflowQueryFailedError as err:
                if on_skip is not None:
                    on_skip(workflow_id, f"cannot answer pending_approvals: {err}")
                return []
            except RPCError as err:
                # A run that ended (or was reset) since it was listed has nothing to decide.
                if err.status != RPCStatusCode.NOT_FOUND and on_skip is not None:
                    on_skip(workflow_id, err.message)
                return []
        return [{"workflow_id": workflow_id, "run_id": run_id, **call} for call in calls]

    found = await asyncio.gather(*(ask(workflow_id, run_id) for workflow_id, run_id in runs))
    calls = sorted(
        (call for group in found for call in group),
        key=lambda c: (str(c.get("requested_at")), c["workflow_id"], c["call_id"]),
    )
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
