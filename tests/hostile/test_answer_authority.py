"""An answer to a server's question counts at the write only when the people who gave it signed it.

Real Temporal, the asking MCP server (tests/support/asking_mcp.py) as a real stdio child, an
approvers file. `transfer(amount)` asks "Destination account?" and sends the money there. The
attacks:
- someone who can reach Temporal polls Airlock's own task queue with a workflow of their own named
  `AgentWorkflow` (the deployment runs Airlock's activities on workers of their own) and schedules
  `airlock.write` for `transfer`, re-sent with an accepted answer they made up: unsigned, or
  signed by a key the approvers file does not hold. The worker refuses it before anything is sent.
- alice's key is removed from the approvers file while a run waits for an answer; past the
  directory bound (60 s), an answer she signed with it arrives as a signal. It is judged against
  the file read again, as a decision is, and refused; bob's signed answer then counts, and the
  worker checks his signature again before it sends the call.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from console.signing import generate_key, public_bytes, sign_decision
from runtime.build import activity_list
from runtime.interceptors import ScrubFailures
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.logs import worker_logs
from tests.support.people import People, refusals
from tests.support.project import Project, airlock_worker, make_project
from tests.support.runs import pending_of, workflow_id
from tests.support.time_skipping import fast_forward
from worker import build_activities
from workflows.identity import public_key_entry
from workflows.input_requests import answer_sha256
from workflows.payloads import AgentRequest, AgentResult

ASKING_STDIO = """
[servers.asking]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.asking_mcp"]
env = ["ASKING_LOG"]
trust = "trusted"
"""
TREASURER = """
name = "treasurer"
instructions = "You move money."
mcp_servers = ["asking"]

[tools]
"*" = "auto"

[approval]
approvers = ["alice", "bob"]
"""
TRANSFER = {"name": "transfer", "arguments": {"amount": 100}}


def project_for(tmp_path: Path, people: People) -> Project:
    """A project whose treasurer transfers 100 (ungated) once, with the test's approvers file."""
    script = {"treasurer": [{"tool_call": TRANSFER}, {"message": "Done."}]}
    project = make_project(
        tmp_path,
        agents={"treasurer": TREASURER},
        script=script,
        servers=ASKING_STDIO,
        approvers_file=people.file,
    )
    project.environ["ASKING_LOG"] = str(tmp_path / "asking.jsonl")
    return project


def applied(project: Project) -> list[dict[str, Any]]:
    """The transfers the server sent."""
    path = Path(project.environ["ASKING_LOG"])
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["applied"]]


# --- (a) a workflow of the attacker's own on Airlock's queue --------------------------------------


@workflow.defn(name="AgentWorkflow", sandboxed=False)
class Impostor:
    """Airlock's workflow type name, run by the attacker's worker on Airlock's task queue."""

    @workflow.run
    async def run(self, target: dict[str, Any]) -> list[str]:
        """Send `transfer` once to learn the question, then again with each made-up answer."""
        first = await workflow.execute_activity(
            "airlock.write",
            {**target["call"], "idempotency_key": f"{workflow.info().workflow_id}/c-1"},
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        question = first["question"]["question_sha256"]
        outcomes = [first["outcome"]]
        for n, signatures in enumerate(target["signatures"], start=1):
            answer = {
                "question_sha256": question,
                "action": "accept",
                "content": {"account": "attacker"},
                "signatures": signatures,
            }
            call = {
                **target["call"],
                "idempotency_key": f"{workflow.info().workflow_id}/c-1/input-{n}",
                "answers": [answer],
            }
            try:
                await workflow.execute_activity(
                    "airlock.write",
                    call,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
                outcomes.append("sent")
            except ActivityError as err:
                cause = err.cause
                outcomes.append(cause.type or "" if isinstance(cause, ApplicationError) else repr(cause))
        return outcomes


@contextlib.asynccontextmanager
async def activities_only(client: Client, project: Project) -> AsyncIterator[Any]:
    """Airlock's activities alone on the project's task queue (its workflows run elsewhere)."""
    activities = build_activities(project.settings, environ=project.environ)
    worker = Worker(
        client,
        task_queue=project.settings.task_queue,
        activities=activity_list(activities),
        interceptors=[ScrubFailures(activities.redactor)],
    )
    try:
        async with worker:
            yield activities
    finally:
        await activities.pool.close()


async def test_a_made_up_answer_sent_with_the_call_again_is_refused_at_the_write(
    client: Client, tmp_path: Path, people: People, capsys: Any
) -> None:
    project = project_for(tmp_path, people)
    wid = workflow_id("impostor")
    mallory = generate_key()
    token = sign_decision(
        mallory,
        signer="alice",
        approver="alice",
        namespace="default",
        workflow_id=wid,
        run_id="any",
        call_id="c-1",
        decision="answer",
        arguments_sha256="0" * 64,
        answer_sha256=answer_sha256("accept", {"account": "attacker"}),
    )
    call = {
        "agent": "treasurer",
        "server": "asking",
        "tool": "transfer",
        "arguments": {"amount": 100},
        "call_id": "c-1",
        "requester": "carol",
    }
    target = {"call": call, "signatures": [[], [token]]}
    async with activities_only(client, project) as activities:
        with worker_logs(activities.redactor, capsys) as logged:
            async with Worker(
                client,
                task_queue=project.settings.task_queue,
                workflows=[Impostor],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                outcomes = await client.execute_workflow(
                    Impostor.run, target, id=wid, task_queue=project.settings.task_queue, result_type=list
                )
            text = logged()
    assert outcomes == ["input_required", "UnauthorizedCallError", "UnauthorizedCallError"]
    assert applied(project) == [], "a made-up answer sent the money"
    refused = [json.loads(line) for line in text.splitlines() if '"call_refused"' in line]
    assert len(refused) == 2
    assert all("accepted answer 1: it needs 1 current approver(s)" in entry["reason"] for entry in refused)


# --- (b) an answer signal judged against a stale approvers file ------------------------------------


def without(people: People, name: str) -> None:
    """Rewrite the approvers file with `name`'s key removed."""
    lines = [
        f'[people.{other}]\nkeys = ["{public_key_entry(public_bytes(people.keys[other]))}"]\n'
        for other in ("alice", "bob", "dave")
        if other != name
    ]
    people.file.write_text("\n".join(lines))


def signed_answer(pending: dict[str, Any], wid: str, who: str, people: People, account: str) -> dict[str, Any]:
    """`who`'s accept of the pending question with `account`, signed with their key."""
    question = pending["question"]["question_sha256"]
    content = {"account": account}
    token = sign_decision(
        people.keys[who],
        signer=who,
        approver=who,
        namespace="default",
        workflow_id=wid,
        run_id=pending["run_id"],
        call_id=pending["call_id"],
        decision="answer",
        arguments_sha256=question,
        answer_sha256=answer_sha256("accept", content),
    )
    return {
        "call_id": pending["call_id"],
        "approver": who,
        "question_sha256": question,
        "action": "accept",
        "content": content,
        "signature": token,
    }


async def input_request(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's pending input request, once there is one."""

    async def check() -> dict[str, Any] | None:
        found = [p for p in await pending_of(handle) if p.get("kind") == "input"]
        return found[0] if found else None

    return await wait_for(check, what="an input request")


async def test_an_answer_signal_is_judged_against_the_approvers_file_as_it_is_now(
    client: Client, tmp_path: Path, people: People
) -> None:
    project = project_for(tmp_path, people)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="treasurer", input="Pay the invoice.", requester="carol"),
            id=workflow_id("stale-answer"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        pending = await input_request(handle)
        # The run read the approvers file before it asked; the bound it states is 60 s.
        without(people, "alice")
        # Past the 60 s bound in the run's own (virtual) time, without a minute of wall time.
        await fast_forward(client, handle, timedelta(seconds=61))
        await handle.signal("answer", signed_answer(pending, handle.id, "alice", people, "alice-account"))
        [reason] = await refusals(handle, 1)
        assert "unknown key" in reason, reason
        assert applied(project) == [], "an answer signed by a removed key sent the money"
        await handle.signal("answer", signed_answer(pending, handle.id, "bob", people, "bob-account"))
        result = await handle.result()
    assert result.output == "Done."
    assert [line["content"] for line in applied(project)] == [{"account": "bob-account"}]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
