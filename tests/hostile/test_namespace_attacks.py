"""Anyone who can reach Temporal cannot make the Airlock worker write without proven authority.

Written as such a client acts: it starts `AgentWorkflow` with a cron schedule or a retry policy
and a checkpoint of its own making, runs a workflow of its own (on its own worker and task
queue) that schedules `airlock.write` and `airlock.read` on Airlock's queue, copies a signature
from an earlier run of the same workflow id, signs for another namespace, and relies on a key
removed from the approvers file. Each time the tickets server is left unwritten, and the worker
or the run says why.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from console.signing import public_bytes
from mcp_servers.tickets.store import count_writes
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.logs import worker_logs
from tests.support.people import People, agent, refusals, signed, start
from tests.support.project import airlock_worker, make_project
from tests.support.runs import wait_pending, workflow_id
from tests.support.time_skipping import fast_forward
from workflows.identity import public_key_entry
from workflows.payloads import AgentRequest

CLOSE_T1 = {"ticket_id": "T-1", "resolution": "fixed"}
# A read, then a write: with `max_history_events = 1` the run continues as new at the read, so
# the continued run's input holds a real checkpoint for the attacker to copy.
READ_THEN_CLOSE = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "close_ticket", "arguments": CLOSE_T1}},
        {"message": "Done."},
    ]
}


# --- helpers -----------------------------------------------------------------------------------


def writes(db: Path) -> int:
    """Writes the tickets server applied; none when it never even started (nothing reached it)."""
    try:
        return count_writes(db)
    except sqlite3.OperationalError:
        return 0


async def close_events(client: Client, wid: str) -> list[Any]:
    """The close event of every closed run of workflow `wid`."""
    found = []
    async for execution in client.list_workflows(f'WorkflowId = "{wid}"'):
        handle = client.get_workflow_handle(wid, run_id=execution.run_id)
        async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
            found.append(event)
    return found


def failure_types(events: list[Any]) -> list[str]:
    """The failure types the runs ended with (a cron or retried run keeps its failure on the close event)."""
    types = []
    for event in events:
        for field in (
            "workflow_execution_failed_event_attributes",
            "workflow_execution_continued_as_new_event_attributes",
        ):
            if event.HasField(field):
                failure = getattr(event, field).failure
                if failure.HasField("application_failure_info"):
                    types.append(failure.application_failure_info.type)
    return types


async def wait_failure(client: Client, wid: str, kind: str, timeout: float = 40.0) -> list[str]:
    """Wait until a run of `wid` ended with failure type `kind`; every run's failure type so far."""

    async def check() -> list[str] | None:
        types = failure_types(await close_events(client, wid))
        return types if kind in types else None

    return await wait_for(check, timeout=timeout, what=f"a run of {wid} failing with {kind}")


async def real_checkpoint(client: Client, project: Any) -> dict[str, Any]:
    """A checkpoint as Airlock itself writes it: the input of a run that continued as new."""
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1.", requester="carol"),
        id=workflow_id("source"),
        task_queue=project.settings.task_queue,
    )
    await wait_pending(handle)  # the continued run waits at close_ticket
    first = None
    async for event in handle.fetch_history_events():
        first = event
        break
    assert first is not None and first.workflow_execution_started_event_attributes.continued_execution_run_id
    payload = first.workflow_execution_started_event_attributes.input.payloads[0]
    await handle.terminate("the attacker has what it needs")
    request = json.loads(payload.data)
    assert request["checkpoint"] is not None
    return request


def forge(request: dict[str, Any]) -> dict[str, Any]:
    """The attacker's edit: close_ticket runs without approval, per the carried plan."""
    for tool in request["checkpoint"]["plan"]["agents"]["support"]["tools"]:
        if tool["name"] == "close_ticket":
            tool["policy"] = "auto"
    return request


# --- (a) forged checkpoints ------------------------------------------------------------------


async def test_a_cron_start_cannot_carry_a_forged_checkpoint(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=READ_THEN_CLOSE, max_history_events=1)
    async with airlock_worker(client, project):
        forged = forge(await real_checkpoint(client, project))
        wid = workflow_id("cron")
        handle = await client.start_workflow(
            "AgentWorkflow",
            forged,
            id=wid,
            task_queue=project.settings.task_queue,
            cron_schedule="@every 2s",
        )
        try:
            # The first run has no predecessor and is refused as before; the next one, started
            # by the cron schedule, has one: it must not be taken for Airlock's own continuation.
            types = await wait_failure(client, wid, "ForgedCheckpointError")
        finally:
            await handle.terminate("test over")
    assert "InvalidInputError" in types
    assert count_writes(project.tickets_db, "close_ticket") == 0, "a forged checkpoint wrote"


async def test_a_retry_policy_cannot_carry_a_forged_checkpoint(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=READ_THEN_CLOSE, max_history_events=1)
    async with airlock_worker(client, project):
        forged = forge(await real_checkpoint(client, project))
    wid = workflow_id("retry")
    # No worker polls the queue now: the first attempt times out, and its retry is a run that
    # "continued" from another one, carrying the attacker's input.
    handle = await client.start_workflow(
        "AgentWorkflow",
        forged,
        id=wid,
        task_queue=project.settings.task_queue,
        run_timeout=timedelta(seconds=2),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
    )
    first_run = handle.first_execution_run_id or (await handle.describe()).run_id

    async def retried() -> bool:
        return (await handle.describe()).run_id != first_run

    await wait_for(retried, timeout=30, what="the retry of the timed-out first attempt")
    try:
        async with airlock_worker(client, project):
            types = await wait_failure(client, wid, "ForgedCheckpointError")
    finally:
        with contextlib.suppress(RPCError):  # over already, unless a check above failed
            await handle.terminate("test over")
    assert types.count("ForgedCheckpointError") == 1
    assert count_writes(project.tickets_db, "close_ticket") == 0, "a forged checkpoint wrote"


# --- (b) another workflow schedules Airlock's activities ---------------------------------------


async def _schedule_both(target: dict[str, Any]) -> list[str]:
    """Schedule `airlock.write`, then `airlock.read`, on Airlock's queue; how each ended."""
    outcomes: list[str] = []
    for name, call in (("airlock.write", target["write"]), ("airlock.read", target["read"])):
        try:
            await workflow.execute_activity(
                name,
                call,
                task_queue=target["queue"],
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
            outcomes.append("sent")
        except ActivityError as err:
            cause = err.cause
            outcomes.append(cause.type or "" if isinstance(cause, ApplicationError) else repr(cause))
    return outcomes


@workflow.defn(name="Intruder", sandboxed=False)
class Intruder:
    """A co-tenant's workflow that asks Airlock's worker to close a ticket."""

    @workflow.run
    async def run(self, target: dict[str, Any]) -> list[str]:
        """Try both activities."""
        return await _schedule_both(target)


@workflow.defn(name="AgentWorkflow", sandboxed=False)
class Impostor:
    """The same, under Airlock's own workflow type name, on the co-tenant's own queue."""

    @workflow.run
    async def run(self, target: dict[str, Any]) -> list[str]:
        """Try both activities."""
        return await _schedule_both(target)


@pytest.mark.parametrize("intruder", [Intruder, Impostor], ids=["another type", "AgentWorkflow elsewhere"])
async def test_another_workflow_cannot_make_the_worker_call_a_tool(
    client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str], intruder: type
) -> None:
    project = make_project(tmp_path)
    own_queue = f"cotenant-{workflow_id('q')}"
    wid = workflow_id("intruder")
    close = {"agent": "support", "server": "tickets", "tool": "close_ticket", "arguments": CLOSE_T1}
    target = {
        "queue": project.settings.task_queue,
        "write": {**close, "call_id": "c-1", "idempotency_key": f"{wid}/c-1"},
        "read": {**close, "call_id": "c-2"},
    }
    async with airlock_worker(client, project) as activities:
        with worker_logs(activities.redactor, capsys) as logged:
            async with Worker(
                client, task_queue=own_queue, workflows=[intruder], workflow_runner=UnsandboxedWorkflowRunner()
            ):
                outcomes = await client.execute_workflow(
                    intruder.run, target, id=wid, task_queue=own_queue, result_type=list
                )
            text = logged()
    assert outcomes == ["UnauthorizedCallError", "UnauthorizedCallError"]
    assert writes(project.tickets_db) == 0, "another workflow wrote with Airlock's credentials"
    refused = [json.loads(line) for line in text.splitlines() if '"call_refused"' in line]
    assert [entry["activity"] for entry in refused] == ["airlock.write", "airlock.read"]
    assert all(entry["workflow_id"] == wid for entry in refused)


# --- (c) a signature good in one run, one namespace -------------------------------------------


async def test_a_signature_from_an_earlier_run_or_another_namespace_is_refused(
    client: Client, tmp_path: Path, people: People
) -> None:
    project = make_project(
        tmp_path,
        script={"support": [{"tool_call": {"name": "close_ticket", "arguments": CLOSE_T1}}, {"message": "Done."}]},
        agents={"support": agent('approvers = ["alice", "bob"]')},
        approvers_file=people.file,
    )
    keys = people.keys
    async with airlock_worker(client, project):
        first = await start(client, project)
        [pending] = await wait_pending(first)
        wid = first.id
        alices = signed(pending, wid, "alice", keys["alice"])
        await first.signal("reject", signed(pending, wid, "bob", keys["bob"], kind="reject"))
        await first.result()
        assert count_writes(project.tickets_db) == 0

        # Run 2 of the same workflow id shows the same call id with the same arguments.
        second = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="carol"),
            id=wid,
            task_queue=project.settings.task_queue,
        )
        [again] = await wait_pending(second)
        assert (again["call_id"], again["arguments_sha256"]) == (pending["call_id"], pending["arguments_sha256"])
        assert again["run_id"] != pending["run_id"]
        await second.signal("approve", alices)
        await second.signal("approve", signed(again, wid, "alice", keys["alice"], namespace="elsewhere"))
        reasons = await refusals(second, 2)
        assert "its run_id differs" in reasons[0], reasons
        assert "its namespace differs" in reasons[1], reasons
        assert count_writes(project.tickets_db) == 0

        # The ordinary path: alice signs what run 2 shows.
        await second.signal("approve", signed(again, wid, "alice", keys["alice"]))
        await second.result()
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert_no_task_failures(await second.fetch_history())
    await assert_replays(second)


# --- (d) current authority ---------------------------------------------------------------------


def without(people: People, name: str) -> None:
    """Rewrite the approvers file with `name`'s key removed."""
    lines = [
        f'[people.{other}]\nkeys = ["{public_key_entry(public_bytes(people.keys[other]))}"]\n'
        for other in ("alice", "bob", "dave")
        if other != name
    ]
    people.file.write_text("\n".join(lines))


async def test_an_approval_by_a_since_removed_key_does_not_count_at_the_write(
    client: Client, tmp_path: Path, people: People
) -> None:
    project = make_project(
        tmp_path,
        script={"support": [{"tool_call": {"name": "close_ticket", "arguments": CLOSE_T1}}, {"message": "Done."}]},
        agents={"support": agent('approvers = ["alice", "bob"]\nrequired = 2')},
        approvers_file=people.file,
    )
    keys = people.keys
    async with airlock_worker(client, project):
        handle = await start(client, project)
        [pending] = await wait_pending(handle)
        await handle.signal("approve", signed(pending, handle.id, "alice", keys["alice"]))

        async def alice_counted() -> bool:
            [waiting] = await wait_pending(handle)
            return waiting["approved_by"] == ["alice"]

        await wait_for(alice_counted, what="alice's approval")
        without(people, "alice")  # alice's key is revoked while the quorum is still open
        await handle.signal("approve", signed(pending, handle.id, "bob", keys["bob"]))
        result = await handle.result()
    [record] = result.approvals
    assert (record.decision, record.outcome) == ("approved", "error")
    assert count_writes(project.tickets_db) == 0, "a revoked key's approval completed the quorum at the write"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_a_key_removed_while_a_run_waits_no_longer_approves(
    client: Client, tmp_path: Path, people: People
) -> None:
    project = make_project(
        tmp_path,
        script={"support": [{"tool_call": {"name": "close_ticket", "arguments": CLOSE_T1}}, {"message": "Done."}]},
        agents={"support": agent('approvers = ["alice", "bob"]')},
        approvers_file=people.file,
    )
    keys = people.keys
    async with airlock_worker(client, project):
        handle = await start(client, project)
        [pending] = await wait_pending(handle)
        # The run read the approvers file before it showed the call; the bound it states is 60 s.
        without(people, "alice")
        # Past the 60 s bound in the run's own (virtual) time, without a minute of wall time.
        await fast_forward(client, handle, timedelta(seconds=61))
        await handle.signal("approve", signed(pending, handle.id, "alice", keys["alice"]))
        [reason] = await refusals(handle, 1)
        assert "unknown key" in reason, reason
        await handle.signal("approve", signed(pending, handle.id, "bob", keys["bob"]))
        await handle.result()
    assert count_writes(project.tickets_db, "close_ticket") == 1
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
