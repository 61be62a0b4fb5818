"""People with signing keys and an approvers file, and signed decisions, for a test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle

from console.signing import public_bytes, sign_decision
from tests.support.conditions import wait_for
from tests.support.project import Project
from tests.support.runs import decision, workflow_id
from workflows.arguments import arguments_sha256
from workflows.identity import public_key_entry
from workflows.payloads import AgentRequest, AgentResult


def agent(approval: str) -> str:
    """The support agent with its own `[approval]` table."""
    return (
        'name = "support"\ninstructions = "You resolve support tickets."\nmcp_servers = ["tickets"]\n'
        f'[tools]\n"get_*" = "auto"\n\n[approval]\n{approval}\n'
    )


@dataclass
class People:
    """Keys of the people and the service of one test, and the approvers file naming them."""

    keys: dict[str, Ed25519PrivateKey]
    file: Path

    def write(self, extra_alice_key: Ed25519PrivateKey | None = None) -> None:
        """(Re)write the approvers file; `extra_alice_key` is a rotated-in second key."""
        lines = []
        for name in ("alice", "bob", "dave"):
            entries = [public_key_entry(public_bytes(self.keys[name]))]
            if name == "alice" and extra_alice_key is not None:
                entries.append(public_key_entry(public_bytes(extra_alice_key)))
            lines.append(f"[people.{name}]\nkeys = {json.dumps(entries)}\n")
        lines.append(
            f'[services.inbox]\nkeys = ["{public_key_entry(public_bytes(self.keys["inbox"]))}"]\n'
            'may_assert = ["bob", "*@example.com"]\n'
        )
        lines.append('[groups]\nleads = ["dave"]\n')
        self.file.write_text("\n".join(lines))


def signed(
    pending: dict[str, Any],
    workflow: str,
    signer: str,
    key: Ed25519PrivateKey,
    *,
    approver: str | None = None,
    kind: str = "approve",
    now: datetime | None = None,
    lifetime: timedelta = timedelta(minutes=10),
    edited: dict[str, Any] | None = None,
    **bind: Any,
) -> dict[str, Any]:
    """A decision payload on `pending`, signed by `key` as `signer` (claims may be bound wrongly)."""
    who = approver or signer
    token = sign_decision(
        key,
        signer=signer,
        approver=who,
        namespace=bind.get("namespace", "default"),
        workflow_id=bind.get("workflow_id", workflow),
        run_id=bind.get("run_id", pending["run_id"]),
        call_id=bind.get("call_id", pending["call_id"]),
        decision=bind.get("decision", kind),  # type: ignore[arg-type]
        arguments_sha256=bind.get("arguments_sha256", pending["arguments_sha256"]),
        edited_sha256=arguments_sha256(edited) if edited is not None else None,
        lifetime=lifetime,
        now=now,
    )
    payload = decision(pending, who, signature=token)
    if edited is not None:
        payload["arguments"] = edited
    return payload


async def start(client: Client, project: Project, requester: str = "carol") -> WorkflowHandle[Any, AgentResult]:
    """Start a support run that will wait at close_ticket."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1.", requester=requester),
        id=workflow_id("signed"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def audit_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's audit trail as JSON."""
    return await handle.query("audit", result_type=list)


async def refusals(handle: WorkflowHandle[Any, Any], count: int) -> list[str]:
    """Wait for `count` refused audit entries; their reasons, in order."""

    async def check() -> list[str] | None:
        found = [e["reason"] for e in await audit_of(handle) if e["event"] == "refused"]
        return found if len(found) >= count else None

    return await wait_for(check, what=f"{count} refusals")
