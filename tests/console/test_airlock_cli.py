"""The installed `airlock` command against the session's real Temporal server.

(Named `test_airlock_cli.py`, not `test_cli.py`: tests/workflows/test_cli.py already holds that
module name, and test directories are not packages.)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.approvers import load_directory
from console.signing import arguments_sha256, key_id_of, load_private_key
from runtime.devserver import free_port
from tests.support.airlock_cli import address_of, airlock
from tests.support.conditions import wait_for
from tests.support.runs import workflow_id
from workflows.commands import decision_command
from workflows.identity import Expected, Verifier, unb64url
from workflows.payloads import Approve, Reject

pytestmark = pytest.mark.integration  # runs the `airlock` CLI as a process

SHA = arguments_sha256({"ticket_id": "T-1"})
# Spelled out, not imported: the search attributes' names are API.
AIRLOCK_STATE = SearchAttributeKey.for_keyword("AirlockState")
AIRLOCK_AGENT = SearchAttributeKey.for_keyword("AirlockAgent")


async def keygen(home: Path, name: str, *extra: str) -> str:
    """Make a key for `name` with the CLI; return the TOML entry it printed."""
    ran = await airlock("keygen", name, *extra, home=home)
    assert ran.code == 0, ran.describe()
    return ran.out


def claims_of(signature: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified."""
    claims: dict[str, Any] = json.loads(unb64url(signature.split(".")[1]))
    return claims


# --- keygen ------------------------------------------------------------------------------------


async def test_keygen_writes_a_private_key_and_an_entry_the_approvers_file_accepts(tmp_path: Path) -> None:
    alice = await keygen(tmp_path, "alice")
    bob = await keygen(tmp_path, "bob@example.com", "--out", str(tmp_path / "keys" / "deep" / "bob.key"))
    key_file = tmp_path / ".config" / "airlock" / "alice.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "keys" / "deep" / "bob.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "deep").stat().st_mode & 0o777 == 0o700
    assert alice.startswith('[people.alice]\nkeys = ["ed25519:')
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(alice + bob)
    directory = load_directory(approvers)
    assert sorted(directory.people) == ["alice", "bob@example.com"]
    # The printed public key is the private key's own half: a signature by the file verifies.
    verifier = Verifier(directory)
    token = (
        await airlock(
            "sign",
            "wf-1",
            "call-1",
            "--as",
            "alice",
            "--decision",
            "approve",
            "--sha256",
            SHA,
            "--run-id",
            "run-1",
            home=tmp_path,
        )
    ).json()["signature"]
    identity = verifier.identify(
        token,
        Expected("wf-1", "call-1", "approve", "alice", SHA, namespace="default", run_id="run-1"),
        datetime.now(UTC),
    )
    assert identity.label == f"signed:alice/{key_id_of(load_private_key(key_file))}"


async def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    await keygen(tmp_path, "alice")
    key_file = tmp_path / ".config" / "airlock" / "alice.key"
    before = key_file.read_bytes()
    again = await airlock("keygen", "alice", home=tmp_path)
    assert again.code == 1, again.describe()
    assert "already exists" in again.err and again.out == ""
    assert key_file.read_bytes() == before
    other = tmp_path / "other.key"
    other.write_text("not mine to replace")
    assert (await airlock("keygen", "carol", "--out", str(other), home=tmp_path)).code == 1
    assert other.read_text() == "not mine to replace"


async def test_keygen_json_output(tmp_path: Path) -> None:
    made = (await airlock("keygen", "dana", "-o", "json", home=tmp_path)).json()
    assert made["path"] == str(tmp_path / ".config" / "airlock" / "dana.key")
    assert made["toml"].startswith("[people.dana]") and made["public_key"] in made["toml"]
    assert made["key_id"] == key_id_of(load_private_key(Path(made["path"])))


# --- usage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["approve", "wf-1"],
        ["approve", "wf-1", "call-1"],  # no --as
        ["reject", "wf-1", "call-1", "--as", "bob"],  # no --reason
        ["approve", "wf-1", "call-1", "--as", "alice", "--edit", "[1, 2]"],
        ["approve", "wf-1", "call-1", "--as", "alice", "--edit", "{not json"],
        ["approve", "wf-1", "call-1", "--as", "alice", "--sha256", "abc"],
        # Off a terminal a person signs only a hash they name (they cannot be shown the call).
        ["approve", "wf-1", "call-1", "--as", "alice"],
        ["reject", "wf-1", "call-1", "--as", "alice", "--reason", "no"],
        ["answer", "wf-1", "call-1", "--decline", "--as", "alice"],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "approve"],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "maybe"],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "reject", "--comment", "x", "--sha256", SHA],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "approve", "--reason", "x", "--sha256", SHA],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "approve", "--expires", "30d", "--sha256", SHA],
        ["sign", "wf-1", "call-1", "--as", "alice", "--decision", "approve", "--comment", "x" * 2001, "--sha256", SHA],
        ["keygen", "not a name"],
        ["pending", "--agent", 'x" OR 1=1'],
        ["--timeout", "0", "pending"],
        ["pending", "-o", "yaml"],
    ],
)
async def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    if args[:1] == ["sign"]:
        await keygen(tmp_path, "alice")  # so that a missing key is not what fails
    ran = await airlock(*args, home=tmp_path, env={"AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
    assert ran.code == 2, ran.describe()
    assert ran.out == ""
    assert "usage:" in ran.err


# --- sign (offline) ----------------------------------------------------------------------------


async def test_sign_with_sha256_prints_a_signal_payload_that_verifies_offline(tmp_path: Path) -> None:
    entry = await keygen(tmp_path, "alice")
    (tmp_path / "approvers.toml").write_text(entry)
    verifier = Verifier(load_directory(tmp_path / "approvers.toml"))
    # Nothing listens here: signing with --sha256 must not need Temporal.
    offline = {"AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    edit = {"ticket_id": "T-1", "resolution": "duplicate"}
    base = ["wf-1", "call-support-1", "--as", "alice", "--sha256", SHA, "--run-id", "run-1"]
    approve = await airlock(
        "sign",
        *base,
        "--decision",
        "approve",
        "--comment",
        "looks right",
        "--edit",
        json.dumps(edit),
        "--expires",
        "1h",
        home=tmp_path,
        env=offline,
    )
    payload = Approve.model_validate(approve.json())
    assert approve.out.count("\n") == 1 and approve.err == ""  # one line of JSON, nothing else
    assert (payload.call_id, payload.approver, payload.arguments_sha256) == ("call-support-1", "alice", SHA)
    assert (payload.comment, payload.arguments) == ("looks right", edit)
    assert payload.signature is not None
    claims = claims_of(payload.signature)
    assert claims["exp"] - claims["iat"] == 3600
    expected = Expected(
        "wf-1",
        "call-support-1",
        "approve",
        "alice",
        SHA,
        edited_sha256=arguments_sha256(edit),
        namespace="default",
        run_id="run-1",
    )
    assert verifier.identify(payload.signature, expected, datetime.now(UTC)).person == "alice"

    reject = await airlock("sign", *base, "--decision", "reject", "--reason", "not yet", home=tmp_path, env=offline)
    refused = Reject.model_validate(reject.json())
    assert refused.reason == "not yet" and refused.signature is not None
    expected = Expected("wf-1", "call-support-1", "reject", "alice", SHA, namespace="default", run_id="run-1")
    assert verifier.identify(refused.signature, expected, datetime.now(UTC)).person == "alice"
    assert claims_of(refused.signature)["exp"] - claims_of(refused.signature)["iat"] == 600
    # A signature for the approval does not count as the rejection, nor the other way round.
    assert claims_of(refused.signature)["jti"] != claims["jti"]


async def test_sign_without_a_key_fails(tmp_path: Path) -> None:
    ran = await airlock(
        "sign", "wf-1", "call-1", "--as", "alice", "--decision", "approve", "--sha256", SHA, home=tmp_path
    )
    assert ran.code == 1 and ran.out == ""
    assert "no key at" in ran.err and "airlock keygen alice" in ran.err


# --- Temporal ----------------------------------------------------------------------------------


async def test_unknown_workflows_exit_1_naming_them(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    await keygen(tmp_path, "alice")
    missing = workflow_id("missing")
    commands = [
        ["show", missing],
        ["show", missing, "call-1"],
        ["audit", missing],
        ["approve", missing, "call-1", "--sha256", SHA, "--as", "alice"],
        ["reject", missing, "call-1", "--sha256", SHA, "--as", "alice", "--reason", "no"],
        ["-o", "json", "approve", missing, "call-1", "--sha256", SHA, "--as", "alice"],
    ]
    for args in commands:
        ran = await airlock("--address", address_of(temporal_env), *args, home=tmp_path)
        assert ran.code == 1, ran.describe()
        assert f"no such workflow: {missing}" in ran.err, ran.describe()
        assert ran.out == ""


async def test_address_option_overrides_the_setting(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    dead = {"AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    agent = f"nobody{uuid.uuid4().hex[:8]}"
    unreachable = await airlock("pending", "--agent", agent, home=tmp_path, env=dead)
    assert unreachable.code == 1 and "cannot reach Temporal" in unreachable.err, unreachable.describe()
    listed = await airlock("--address", address_of(temporal_env), "pending", "--agent", agent, home=tmp_path, env=dead)
    assert listed.code == 0, listed.describe()
    assert listed.out == "nothing is waiting for a decision\n"
    by_setting = await airlock(
        "-o",
        "json",
        "pending",
        "--agent",
        agent,
        home=tmp_path,
        env={"AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env)},
    )
    assert by_setting.json() == []
    wrong_namespace = await airlock(
        "--address", address_of(temporal_env), "--namespace", "no-such-namespace", "pending", home=tmp_path
    )
    assert wrong_namespace.code == 1 and wrong_namespace.out == "", wrong_namespace.describe()


# --- pending, at scale -------------------------------------------------------------------------


@workflow.defn(name="CliTestWaitingRun")
class WaitingRun:
    """Stands in for an AgentWorkflow paused at its gate: answers `pending_approvals`, waits."""

    @workflow.run
    async def run(self, agent: str) -> None:
        """Say it waits (as the gate does, from the workflow), then wait until terminated."""
        self._agent = agent
        workflow.upsert_search_attributes(
            [
                AIRLOCK_STATE.value_set("awaiting_approval"),
                AIRLOCK_AGENT.value_set(agent),
            ]
        )
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="pending_approvals")
    def pending_approvals(self) -> list[dict[str, Any]]:
        """One call waiting, like the gate reports it."""
        info = workflow.info()
        return [
            {
                "call_id": "call-fake-1",
                "agent": self._agent,
                "server": "tickets",
                "tool": "close_ticket",
                "arguments": {"ticket_id": info.workflow_id},
                "arguments_sha256": arguments_sha256({"ticket_id": info.workflow_id}),
                # A quorum of two, alice approved: one more needed (the gate reports what remains).
                "requested_at": info.start_time.isoformat(),
                "deadline": None,
                "approvals_needed": 1,
                "approved_by": ["alice"],
            }
        ]


def waiting_attributes(agent: str) -> TypedSearchAttributes:
    """The search attributes of a run of `agent` waiting at its gate."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(AIRLOCK_STATE, "awaiting_approval"),
            SearchAttributePair(AIRLOCK_AGENT, agent),
        ]
    )


async def start_waiting(client: Client, task_queue: str, agent: str, count: int, prefix: str) -> list[str]:
    """Start `count` runs of `agent` that will say they wait (20 starts at a time)."""
    ids = [f"{prefix}-{i:03d}" for i in range(count)]
    gate = asyncio.Semaphore(20)

    async def one(run_id: str) -> None:
        async with gate:
            await client.start_workflow(
                WaitingRun.run, agent, id=run_id, task_queue=task_queue, run_timeout=timedelta(minutes=10)
            )

    await asyncio.gather(*(one(run_id) for run_id in ids))
    return ids


async def terminate(client: Client, ids: list[str]) -> None:
    """End runs a test started (20 at a time); ones already ended are fine."""
    gate = asyncio.Semaphore(20)

    async def one(run_id: str) -> None:
        async with gate:
            await client.get_workflow_handle(run_id).terminate("test over")

    await asyncio.gather(*(one(run_id) for run_id in ids), return_exceptions=True)


# More than one batch of concurrent queries; the time for 500 is a figure of the benchmark.
RUNS = 45


async def test_pending_lists_every_waiting_run_and_skips_one_nobody_answers(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    agent = f"fake{uuid.uuid4().hex[:8]}"
    task_queue = f"cli-test-{uuid.uuid4().hex[:8]}"
    prefix = workflow_id("waiting")
    ids: list[str] = []
    # Unsandboxed: this stand-in is not Airlock's workflow code, and the sandbox would re-import
    # this whole test module (and the worker) for it.
    runner = UnsandboxedWorkflowRunner()
    async with Worker(client, task_queue=task_queue, workflows=[WaitingRun], workflow_runner=runner):
        try:
            ids = await start_waiting(client, task_queue, agent, RUNS, prefix)
            # A run nobody answers for (no worker on its queue) must not stall or break the list.
            orphan = workflow_id("orphan")
            await client.start_workflow(
                WaitingRun.run,
                agent,
                id=orphan,
                task_queue=f"{task_queue}-nobody",
                search_attributes=waiting_attributes(agent),
                run_timeout=timedelta(minutes=10),
            )
            ids.append(orphan)
            query = f'AirlockAgent="{agent}" AND ExecutionStatus="Running"'

            async def all_visible() -> bool:
                return (await client.count_workflows(query)).count == RUNS + 1

            # Listed as waiting means its first workflow task ran (it upserted): it can answer.
            await wait_for(all_visible, timeout=90, what=f"{RUNS + 1} runs in visibility")
            ran = await airlock(
                "--address",
                address_of(temporal_env),
                "--timeout",
                "3",
                "-o",
                "json",
                "pending",
                "--agent",
                agent,
                home=tmp_path,
            )
            calls = ran.json()
            table = await airlock(
                "--address", address_of(temporal_env), "--timeout", "3", "pending", "--agent", agent, home=tmp_path
            )
        finally:
            await terminate(client, ids)
    assert len(calls) == RUNS, ran.err
    assert sorted(c["workflow_id"] for c in calls) == sorted(ids[:RUNS])
    first = next(c for c in calls if c["workflow_id"] == ids[0])
    assert first["arguments"] == {"ticket_id": ids[0]} and first["agent"] == agent
    assert first["approve_command"] == decision_command(ids[0], "call-fake-1", first["arguments_sha256"], "approve")
    assert first["reject_command"] == decision_command(ids[0], "call-fake-1", first["arguments_sha256"], "reject")
    assert f"skipped {orphan}" in ran.err
    lines = table.out.splitlines()
    assert table.code == 0 and len(lines) == RUNS + 1, table.describe()
    assert lines[0].split() == ["WORKFLOW", "CALL", "AGENT", "TOOL", "ARGUMENTS", "WAITING", "DEADLINE", "NEEDS"]
    row = next(line for line in lines if line.startswith(ids[0] + " "))
    # One approval still needed; no deadline.
    assert row.split()[1:4] == ["call-fake-1", agent, "tickets.close_ticket"] and row.split()[-2:] == ["-", "1"]
    assert "\x1b[" not in table.out  # no colour in a pipe
