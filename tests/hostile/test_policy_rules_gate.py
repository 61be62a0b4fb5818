"""A Cedar policy decides a call by its arguments, and the worker holds the write to what its files say now.

Real Temporal, the bundled tickets server over stdio, the scripted model, policies in
`agents/policies/` (the default directory). The support agent closes four tickets, one per
resolution; the policy runs `duplicate` alone, asks one approver for `fixed`, two named ones for
`wont_fix`, and forbids `invalid`. Then the attacks:
- a run whose call was approved under one policy reaches a worker whose policy now forbids it,
  or now needs two signed approvals where the run recorded one: the worker's own re-check refuses
  the write, and nothing is sent;
- a policy file with a syntax error stops the worker at start, naming the file and the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle

from console import policy as policy_cli
from console.signing import generate_key, public_bytes, sign_decision
from mcp_servers.tomlfiles import ConfigError
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import Project, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, pending_of, workflow_id
from worker import build_activities
from workflows.identity import public_key_entry
from workflows.payloads import AgentRequest, AgentResult

# Every test here starts the tickets server (and most a worker on the dev server).
pytestmark = pytest.mark.integration

SUPPORT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]

[tools]
"get_*" = "auto"

[approval]
approvers = ["alice", "bob", "carol"]
"""

POLICIES = """\
// What closing a ticket needs depends on its resolution.
@id("duplicates-run-alone")
@decision("auto")
permit(principal == Agent::"support", action == Action::"call", resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "duplicate" };

@id("fixed-needs-one")
permit(principal == Agent::"support", action, resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "fixed" };

@id("wont-fix-needs-two")
@approvals("2")
@approvers("alice, bob")
permit(principal == Agent::"support", action, resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "wont_fix" };

@id("never-invalid")
@reason("closing as invalid hides a report")
forbid(principal, action, resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "invalid" };
"""


def close(ticket: str, resolution: str) -> dict[str, Any]:
    return {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": ticket, "resolution": resolution}}}


def project_for(tmp_path: Path, steps: list[dict[str, Any]], policies: str = POLICIES) -> Project:
    project = make_project(tmp_path, agents={"support": SUPPORT}, script={"support": [*steps, {"message": "Done."}]})
    policy_dir = tmp_path / "agents" / "policies"
    policy_dir.mkdir(exist_ok=True)
    (policy_dir / "tickets.cedar").write_text(policies)
    return project


async def start(client: Client, project: Project) -> WorkflowHandle[Any, AgentResult]:
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close the tickets.", requester="svc-triage"),
        id=workflow_id("cedar"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def pending_for(handle: WorkflowHandle[Any, Any], resolution: str) -> dict[str, Any]:
    """The pending approval of the call that closes with `resolution`, once it waits."""

    async def check() -> dict[str, Any] | None:
        found = [p for p in await pending_of(handle) if p["arguments"].get("resolution") == resolution]
        return found[0] if found else None

    return await wait_for(check, what=f"the {resolution} call pending")


async def test_one_argument_decides_auto_one_approval_two_approvals_or_deny(client: Client, tmp_path: Path) -> None:
    steps = [close("T-1", "duplicate"), close("T-2", "fixed"), close("T-3", "wont_fix"), close("T-4", "invalid")]
    project = project_for(tmp_path, steps)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)

        # `duplicate` ran alone; `fixed` waits for one of the agent's approvers.
        fixed = await pending_for(handle, "fixed")
        assert fixed["approvals_needed"] == 1
        assert spy.tool_outputs()[0].startswith("{") and "duplicate" in spy.tool_outputs()[0]
        await handle.signal("approve", decision(fixed, "carol"))

        # `wont_fix`: two people, and only those the policy names (carol is the agent's, not the policy's).
        wont_fix = await pending_for(handle, "wont_fix")
        assert wont_fix["approvals_needed"] == 2
        await handle.signal("approve", decision(wont_fix, "carol"))
        await handle.signal("approve", decision(wont_fix, "alice"))

        async def one_left() -> bool:
            [waiting] = [p for p in await pending_of(handle) if p["call_id"] == wont_fix["call_id"]]
            return waiting["approvals_needed"] == 1 and waiting["approved_by"] == ["alice"]

        await wait_for(one_left, what="alice's approval counted, carol's refused")
        await handle.signal("approve", decision(wont_fix, "bob"))

        result = await handle.result()
        assert result.output == "Done."
        outputs = spy.tool_outputs()
        assert len(outputs) == 4
        assert [json.loads(text)["resolution"] for text in outputs[:3]] == ["duplicate", "fixed", "wont_fix"]
        assert outputs[3] == (
            "Error: close_ticket was not called: policy never-invalid (tickets.cedar:17) denies it: "
            "closing as invalid hides a report."
        )
        assert result.tool_calls == 3

        audit = await handle.query("audit", result_type=list)
        requested = {e["arguments_sha256"]: e["rule"] for e in audit if e["event"] == "requested"}
        assert requested == {
            fixed["arguments_sha256"]: "fixed-needs-one (tickets.cedar:7)",
            wont_fix["arguments_sha256"]: "wont-fix-needs-two (tickets.cedar:11)",
        }
        refused = [(e["actor"], e["reason"], e.get("rule")) for e in audit if e["event"] == "refused"]
        assert refused[0][0] == "carol" and "is not an approver" in refused[0][1]
        assert refused[1] == (
            "policy",
            "denied by policy never-invalid (tickets.cedar:17): closing as invalid hides a report",
            "never-invalid (tickets.cedar:17)",
        )
        approved = [e["actor"] for e in audit if e["event"] == "approved"]
        assert approved == ["carol", "alice", "bob"]
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)


async def test_the_worker_refuses_a_write_its_policy_now_forbids(client: Client, tmp_path: Path) -> None:
    project = project_for(tmp_path, [close("T-2", "fixed")])
    async with airlock_worker(client, project):
        handle = await start(client, project)
        fixed = await pending_for(handle, "fixed")
    # The operator forbids closing as `fixed`; the run approved under the old policy reaches the new worker.
    (tmp_path / "agents" / "policies" / "tickets.cedar").write_text(
        POLICIES
        + '\n@id("no-fixed")\nforbid(principal, action, resource) when { context.arguments.resolution == "fixed" };\n'
    )
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        await handle.signal("approve", decision(fixed, "alice"))
        result = await handle.result()
        [output] = spy.tool_outputs()
        assert "the worker refused tickets.close_ticket: policy no-fixed (tickets.cedar:" in output
        [record] = result.approvals
        assert record.decision == "approved" and record.outcome == "error"
        await assert_replays(handle)


def signed_approval(pending: dict[str, Any], workflow: str, who: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """`who`'s approval of `pending`, signed with `key` and bound to the run that shows it."""
    token = sign_decision(
        key,
        signer=who,
        approver=who,
        namespace="default",
        workflow_id=workflow,
        run_id=pending["run_id"],
        call_id=pending["call_id"],
        decision="approve",
        arguments_sha256=pending["arguments_sha256"],
    )
    return decision(pending, who, signature=token)


async def test_the_worker_refuses_a_write_approved_by_fewer_people_than_its_policy_now_requires(
    client: Client, tmp_path: Path
) -> None:
    keys = {name: generate_key() for name in ("alice", "bob")}
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(
        "".join(
            f"[people.{name}]\nkeys = {json.dumps([public_key_entry(public_bytes(key))])}\n"
            for name, key in keys.items()
        )
    )
    project = make_project(
        tmp_path,
        agents={"support": SUPPORT.replace('"alice", "bob", "carol"', '"alice", "bob"')},
        script={"support": [close("T-3", "wont_fix"), {"message": "Done."}]},
        approvers_file=approvers,
    )
    policies = tmp_path / "agents" / "policies"
    policies.mkdir()
    (policies / "tickets.cedar").write_text(POLICIES.replace('@approvals("2")', '@approvals("1")'))
    async with airlock_worker(client, project):
        handle = await start(client, project)
        wont_fix = await pending_for(handle, "wont_fix")
        assert wont_fix["approvals_needed"] == 1
    # The policy now asks two people; the run recorded one, and alice's approval reaches the new worker.
    (policies / "tickets.cedar").write_text(POLICIES)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        await handle.signal("approve", signed_approval(wont_fix, handle.id, "alice", keys["alice"]))
        result = await handle.result()
        [output] = spy.tool_outputs()
        assert "the worker refused tickets.close_ticket: it needs 2 current approver(s), and 1 signed" in output
        [record] = result.approvals
        assert record.decision == "approved" and record.approved_by == ["alice"] and record.outcome == "error"
        await assert_replays(handle)


def test_a_policy_syntax_error_stops_the_worker_naming_file_and_line(tmp_path: Path) -> None:
    broken = POLICIES.replace('resolution == "fixed" };', "resolution == };")
    project = project_for(tmp_path, [], policies=broken)
    with pytest.raises(ConfigError) as error:
        build_activities(project.settings, environ=project.environ)
    assert f"{tmp_path / 'agents' / 'policies' / 'tickets.cedar'}:9: unexpected token" in str(error.value)


@pytest.mark.parametrize(
    ("resolution", "decided", "approvals", "rule"),
    [
        ("duplicate", "auto", 1, "duplicates-run-alone (tickets.cedar:2)"),
        ("fixed", "approve", 1, "fixed-needs-one (tickets.cedar:7)"),
        ("wont_fix", "approve", 2, "wont-fix-needs-two (tickets.cedar:11)"),
        ("invalid", "deny", 1, "never-invalid (tickets.cedar:17)"),
        ("cannot_reproduce", "approve", 1, "[tools] of support.toml"),
    ],
)
async def test_policy_check_prints_the_decision_and_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolution: str, decided: str, approvals: int, rule: str
) -> None:
    project = project_for(tmp_path, [])
    monkeypatch.setenv("TICKETS_DB", project.environ["TICKETS_DB"])
    arguments = json.dumps({"ticket_id": "T-1", "resolution": resolution})
    found = await policy_cli.judge(project.settings, "support", "tickets.close_ticket", arguments)
    assert (found["decision"], found["approvals"], found["rule"]) == (decided, approvals, rule)
    shown = policy_cli.render(found)
    assert shown.startswith(f"decision:  {decided}\n") and f"rule:      {rule}" in shown
