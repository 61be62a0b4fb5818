"""`airlock` decides real runs: signed approvals through the `review` update, refusals that
change nothing, the signal path for other clients — real Temporal, real MCP over stdio, the
scripted model, and the installed console script as a subprocess.

These need the signed gate (decisions bound to `arguments_sha256`, signatures verified in the
workflow, `review` refusals audited, `AIRLOCK_APPROVERS_FILE`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.airlock_cli import airlock
from tests.support.conditions import wait_for
from tests.support.desk import ended, make_desk, start
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker
from tests.support.runs import pending_of, temporal_cli, wait_pending, workflow_id
from workflows.arguments import arguments_sha256
from workflows.commands import decision_command

# One step: the support agent, whose close waits at its own gate as a child run.
PIPELINE = """
name = "fix"
[[steps]]
name = "fix"
agent = "support"
"""


async def wait_child_pending(child: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The one call a pipeline's child waits for; the child may not have started yet."""

    async def check() -> dict[str, Any] | None:
        try:
            pending = await pending_of(child)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        return pending[0] if pending else None

    return await wait_for(check, what=f"a pending call in {child.id}")


async def audit_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's audit trail, as plain JSON."""
    return await handle.query("audit", result_type=list)


async def test_pending_lists_the_calls_of_two_runs_and_a_pipeline_child(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env, pipelines={"fix": PIPELINE})
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        first, second = await start(client, desk, "pending-a"), await start(client, desk, "pending-b")
        pipeline_id = workflow_id("pending-pipeline")
        await client.start_workflow(
            "PipelineWorkflow",
            {"pipeline": "fix", "input": "Close T-1.", "requester": "carol"},
            id=pipeline_id,
            task_queue=desk.project.settings.task_queue,
        )
        child = client.get_workflow_handle(f"{pipeline_id}/fix")
        started.extend([first.id, second.id, pipeline_id, child.id])
        ours = {first.id, second.id, child.id}
        own = {h.id: (await wait_pending(h))[0] for h in (first, second)}
        own[child.id] = await wait_child_pending(child)

        async def listed() -> list[dict[str, Any]] | None:
            calls = [c for c in (await desk.run("-o", "json", "pending")).json() if c["workflow_id"] in ours]
            return calls if len(calls) == 3 else None

        calls = await wait_for(listed, what="the three waiting calls in `airlock pending`")
        table = await desk.run("pending", "--agent", "support")
        pipeline_shown = await desk.run("show", pipeline_id)
        other_agent = (await desk.run("-o", "json", "pending", "--agent", "billing")).json()
    assert {c["workflow_id"] for c in calls} == ours  # the pipeline itself is not a waiting run
    for call in calls:
        # What `pending` lists is what each run itself reports, hash included.
        assert {k: v for k, v in call.items() if k in own[call["workflow_id"]]} == own[call["workflow_id"]]
        assert (call["agent"], call["server"], call["tool"]) == ("support", "tickets", "close_ticket")
        assert call["arguments"] == {"ticket_id": "T-1"}
        assert call["approve_command"] == decision_command(
            call["workflow_id"], call["call_id"], call["arguments_sha256"], "approve"
        )
    assert table.code == 0, table.describe()
    rows = {line.split()[0]: line.split() for line in table.out.splitlines()[1:]}
    for run_id in ours:
        assert rows[run_id][1:4] == [own[run_id]["call_id"], "support", "tickets.close_ticket"], table.out
    assert not ours & {c["workflow_id"] for c in other_agent}
    # `show` of the pipeline points at the child, whose own gate decides.
    assert pipeline_shown.code == 0, pipeline_shown.describe()
    assert f"{child.id}  {own[child.id]['call_id']}  tickets.close_ticket" in pipeline_shown.out


async def test_approve_as_alice_with_her_key_runs_the_write_once(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env)
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "approve")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        shown = await desk.run("show", handle.id, pending["call_id"])
        approved = await desk.run(
            "-o",
            "json",
            "approve",
            handle.id,
            pending["call_id"],
            "--as",
            "alice",
            "--comment",
            "verified on staging",
            "--sha256",
            pending["arguments_sha256"],
        )
        result = await handle.result()
        audit = (await desk.run("-o", "json", "audit", handle.id)).json()
        audit_table = await desk.run("audit", handle.id)
    assert shown.code == 0 and pending["arguments_sha256"] in shown.out and '"ticket_id": "T-1"' in shown.out
    record = approved.json()
    assert (record["call_id"], record["decision"], record["decided_by"]) == (pending["call_id"], "approved", "alice")
    assert record["identity"].startswith("signed:alice/")
    assert approved.err == ""  # signed: no warning about an unsigned decision
    assert result.output == "Done."
    assert count_writes(desk.project.tickets_db, "close_ticket") == 1
    [decision] = [e for e in audit if e["event"] == "approved"]
    assert (decision["actor"], decision["identity"]) == ("alice", record["identity"])
    assert [e["event"] for e in audit] == ["requested", "approved", "outcome"]
    assert audit_table.out.splitlines()[0].split() == ["AT", "EVENT", "CALL", "ACTOR", "IDENTITY", "REASON", "HASH"]
    assert record["identity"] in audit_table.out
    await assert_replays(handle)


async def test_reject_ends_the_call_and_writes_nothing(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env)
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "reject")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        sha = pending["arguments_sha256"]
        rejected = await desk.run(
            "reject", handle.id, pending["call_id"], "--sha256", sha, "--as", "bob", "--reason", "T-1 still fails in EU"
        )
        result = await handle.result()
        again = await desk.run("approve", handle.id, pending["call_id"], "--sha256", sha, "--as", "alice")
    assert rejected.code == 0, rejected.describe()
    assert "rejected" in rejected.out and "T-1 still fails in EU" in rejected.out
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.reason) == ("rejected", "bob", "T-1 still fails in EU")
    assert count_writes(desk.project.tickets_db) == 0
    # Once decided, the call is not pending: the CLI says so, naming the workflow and the call.
    assert again.code == 1 and again.err.startswith("refused:"), again.describe()
    assert handle.id in again.err and pending["call_id"] in again.err
    await assert_replays(handle)


async def test_unsigned_wrong_hash_and_unlisted_approvals_are_refused_and_change_nothing(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env)
    keyless = tmp_path / "keyless"
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "refused")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        call, sha = pending["call_id"], pending["arguments_sha256"]
        unsigned = await airlock(
            "--address", desk.address, "approve", handle.id, call, "--sha256", sha, "--as", "alice", home=keyless
        )
        wrong_hash = await desk.run("approve", handle.id, call, "--as", "alice", "--sha256", "0" * 64)
        unlisted = await desk.run("approve", handle.id, call, "--sha256", sha, "--as", "mallory")
        still = await pending_of(handle)
        audit = await audit_of(handle)
        # Then the real decision still goes through: nothing above used it up or blocked it.
        approved = await desk.run("approve", handle.id, call, "--sha256", sha, "--as", "bob")
        result = await handle.result()
    for ran in (unsigned, wrong_hash, unlisted):
        assert ran.code == 1 and ran.err.splitlines()[-1].startswith("refused: "), ran.describe()
        assert ran.out == ""
    assert "refused: unsigned decision" in unsigned.err  # the run's reason
    assert "sending an unsigned decision" in unsigned.err  # and the CLI said what it sent
    assert "wrong arguments_sha256" in wrong_hash.err and handle.id in wrong_hash.err and call in wrong_hash.err
    assert "not an approver" in unlisted.err
    assert still == [pending]
    # The wrong hash never left the CLI; the run's update validator refused the other two, which
    # leaves nothing in its history or its audit (the refusal is the update's answer).
    assert [e["event"] for e in audit] == ["requested"], audit
    assert approved.code == 0, approved.describe()
    assert [(a.decision, a.decided_by) for a in result.approvals] == [("approved", "bob")]
    assert count_writes(desk.project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)


async def test_a_signed_payload_from_sign_is_delivered_by_the_temporal_cli(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env)
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "signal")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        signed = await desk.run(
            "sign",
            handle.id,
            pending["call_id"],
            "--sha256",
            pending["arguments_sha256"],
            "--run-id",
            (await handle.describe()).run_id,
            "--as",
            "alice",
            "--decision",
            "approve",
            "--comment",
            "via signal",
        )
        payload = signed.json()
        await temporal_cli(
            temporal_env,
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "approve",
            "--input",
            signed.out.strip(),
        )
        result = await handle.result()
        audit = await audit_of(handle)
    assert payload["arguments_sha256"] == pending["arguments_sha256"]
    [record] = result.approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "alice", "ok")
    assert record.identity is not None and record.identity.startswith("signed:alice/")
    assert count_writes(desk.project.tickets_db, "close_ticket") == 1
    assert json.dumps(payload["comment"]) == '"via signal"'
    assert [e["event"] for e in audit][:2] == ["requested", "approved"]
    await assert_replays(handle)


async def test_an_edit_is_signed_and_the_call_runs_with_the_edited_arguments(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    desk = await make_desk(tmp_path, temporal_env)
    edit = {"ticket_id": "T-1", "resolution": "duplicate"}
    async with airlock_worker(client, desk.project), ended(client, []) as started:
        handle = await start(client, desk, "edit")
        started.append(handle.id)
        [pending] = await wait_pending(handle)
        approved = await desk.run(
            "-o",
            "json",
            "approve",
            handle.id,
            pending["call_id"],
            "--sha256",
            pending["arguments_sha256"],
            "--as",
            "alice",
            "--edit",
            json.dumps(edit),
            "--comment",
            "it was a duplicate",
        )
        result = await handle.result()
    record = approved.json()
    assert (record["decision"], record["arguments"]) == ("approved", edit)
    [done] = result.approvals
    assert (done.arguments, done.requested_sha256, done.outcome) == (edit, pending["arguments_sha256"], "ok")
    assert done.arguments_sha256 == arguments_sha256(edit)
    assert count_writes(desk.project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)
