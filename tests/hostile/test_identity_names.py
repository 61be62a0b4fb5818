"""One person is one person, however their name is spelled; the requester is shown as claimed.

The real stack: a Temporal dev server, an Airlock worker, the tickets server over stdio, and the
inbox service whose key may vouch for `*@example.com`. The attacker is alice behind that service:
she requested the run and approves it as `ALICE@…`, counts herself twice as `bob`/`Bob`, and tries
a name with two `@` that the glob once took. Only two distinct people, neither of them the
requester, open the gate; the views and the inbox page say the requester is only claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper
from console.inbox.runs import Runs
from console.inbox.server import bind, serve
from mcp_servers.tickets.store import count_writes
from tests.support.airlock_cli import address_of, airlock
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.tokens import signed_token
from workflows.identity import public_key_entry
from workflows.payloads import AgentRequest, AgentResult

HEADER = "X-Forwarded-User"
SECRET = b"identity-names-csrf-secret"
SUPPORT = """
name = "support"
instructions = "You resolve support tickets."
mcp_servers = ["tickets"]
[tools]
"get_*" = "auto"
[approval]
required = 2
"""
SCRIPT = {
    "support": [
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
        {"message": "Done."},
    ]
}


def vouched(
    key: Ed25519PrivateKey, namespace: str, handle: WorkflowHandle[Any, Any], pending: dict[str, Any], who: str
) -> dict[str, Any]:
    """An approval for `who`, signed by the inbox service (which may assert `*@example.com`)."""
    now = datetime.now(UTC)
    token = signed_token(
        key,
        iat=now,
        exp=now + timedelta(minutes=10),
        iss="inbox",
        sub=who,
        namespace=namespace,
        workflow_id=handle.id,
        run_id=pending.get("run_id") or handle.result_run_id,
        call_id=pending["call_id"],
        decision="approve",
        arguments_sha256=pending["arguments_sha256"],
    )
    return decision(pending, who, signature=token)


@contextlib.asynccontextmanager
async def inbox(client: Client, key: Ed25519PrivateKey, settings: Any) -> AsyncIterator[str]:
    """The inbox on a free loopback port, behind a proxy header it trusts from 127.0.0.1."""
    sock = bind(settings)
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    gatekeeper = Gatekeeper(identity_header=HEADER, trusted_proxies=["127.0.0.1"], allowed_hosts=[host], secret=SECRET)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(build_app(Runs(client, key), gatekeeper), settings, stop, sock))
    try:
        yield f"http://{host}"
    finally:
        stop.set()
        await serving


async def refusals(handle: WorkflowHandle[Any, Any], count: int) -> list[str]:
    """Wait for `count` refused attempts in the audit; their reasons."""

    async def check() -> list[str] | None:
        audit = await handle.query("audit", result_type=list)
        found = [e["reason"] for e in audit if e["event"] == "refused"]
        return found if len(found) >= count else None

    return await wait_for(check, what=f"{count} refusals")


async def test_one_person_in_two_spellings_neither_meets_a_quorum_nor_escapes_self_approval(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    service = Ed25519PrivateKey.generate()
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(
        f'[services.inbox]\nkeys = ["{public_key_entry(service.public_key().public_bytes_raw())}"]\n'
        'may_assert = ["*@example.com"]\n'
    )
    project = make_project(tmp_path, script=SCRIPT, agents={"support": SUPPORT}, approvers_file=approvers, inbox_port=0)
    async with airlock_worker(client, project), inbox(client, service, project.settings) as url:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="Close T-1.", requester="alice@example.com"),
            id=workflow_id("names"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        status = await handle.query("status", result_type=dict)
        assert (pending["requester"], pending["requester_proof"]) == ("alice@example.com", "claimed")
        assert (status["requester"], status["requester_proof"]) == ("alice@example.com", "claimed")

        call_page = f"{url}/call?" + urlencode({"wf": handle.id, "call": pending["call_id"]})
        async with httpx.AsyncClient(timeout=30) as http:
            listing = await http.get(f"{url}/", headers={HEADER: "bob@example.com"})
            as_alice = await http.get(call_page, headers={HEADER: "ALICE@example.com"})
        assert listing.status_code == 200 and as_alice.status_code == 200
        for page in (listing.text, as_alice.text):
            assert 'alice@example.com <small class="proof"' in page and "(claimed)</small>" in page
        # The inbox does not offer alice, in capitals, a decision on her own run.
        assert 'id="not-yours"' in as_alice.text and 'id="approve"' not in as_alice.text
        shown = await airlock("--address", address_of(temporal_env), "show", handle.id, home=tmp_path)
        assert shown.code == 0, shown.describe()
        requester_lines = [line for line in shown.out.splitlines() if line.startswith("requester ")]
        assert len(requester_lines) == 2 and all(
            line.endswith("alice@example.com (claimed)") for line in requester_lines
        )

        namespace = client.namespace
        for who in ("ALICE@example.com", "evil@x.com@example.com", "bob@example.com", "Bob@example.com"):
            await handle.signal("approve", vouched(service, namespace, handle, pending, who))
        reasons = await refusals(handle, 3)
        assert "forbids self-approval" in reasons[0], reasons
        assert "not a valid name" in reasons[1], reasons
        assert "already approved" in reasons[2], reasons
        [waiting] = await wait_pending(handle)
        assert (waiting["approved_by"], waiting["approvals_needed"]) == (["bob@example.com"], 1)
        assert count_writes(project.tickets_db) == 0, "one person, spelled twice, must not meet a quorum of 2"

        await handle.signal("approve", vouched(service, namespace, handle, pending, "Carol@Example.com"))
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
    [record] = result.approvals
    assert (record.decision, record.approved_by, record.decided_by) == (
        "approved",
        ["bob@example.com", "carol@example.com"],
        "carol@example.com",
    )
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [requested] = [e for e in audit if e["event"] == "requested"]
    assert (requested["requester"], requested["requester_proof"]) == ("alice@example.com", "claimed")
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
