"""`airlock approve`, `reject`, `answer`, `sign` and `keygen`: a person's signed decisions on one call.

A person signs only what they were shown: the command binds the hash they saw (`--sha256`), or
shows the call on a terminal and asks; the run re-checks the signature and the hash.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from console import render, signing
from console.decisions import send_answer, send_review
from console.errors import CliError, DecisionNotRecordedError, UsageError
from console.temporal import client_for, query, rpc_error, run_of, settings_for
from console.terminal import confirm, emit, interactive, write
from workflows.identity import Kind
from workflows.input_requests import answer_sha256
from workflows.payloads import Answer, Approve, PendingApprovalView, Reject, Review

DECISION_FIELDS = (
    "call_id",
    "decision",
    "decided_by",
    "decided_at",
    "identity",
    "reason",
    "arguments_sha256",
    "approved_by",
    "approvals_needed",
    "outcome",
)
ANSWER_FIELDS = ("call_id", "action", "actor", "at", "identity", "question_sha256", "answer_sha256")


async def cmd_keygen(args: argparse.Namespace) -> int:
    """Make a key pair, write the private key (0600), print the approvers.toml entry."""
    path: Path = args.out or signing.default_key_path(args.name)
    key = signing.generate_key()
    signing.save_private_key(key, path)
    entry = signing.toml_entry(args.name, key)
    public = signing.public_bytes(key)
    emit(
        args,
        {
            "name": args.name,
            "path": str(path),
            "key_id": signing.key_id_of(key),
            "public_key": signing.public_key_entry(public),
            "toml": entry,
        },
        entry,
    )
    sys.stderr.write(f"wrote {path}; add the entry to approvers.toml (AIRLOCK_APPROVERS_FILE)\n")
    return 0


async def cmd_decide(args: argparse.Namespace) -> int:
    """Approve or reject one pending call with the `review` update; print the recorded decision."""
    _require_seen(args, "arguments_sha256")
    client = await client_for(args)
    handle = client.get_workflow_handle(args.workflow_id)
    call = await _pending_call(handle, args)
    sha = _bound_sha256(args, call.arguments_sha256)
    edit, edited = _edit(args, sha)
    if args.sha256 is None:
        await confirm(render.decision_preview(args.workflow_id, call, edit, edited), f"{args.decision}?")
    signature = _optional_signature(
        args, "decision", args.decision, sha, run_id=await run_of(handle, call.run_id), edited_sha256=edited
    )
    payload = _wire(
        Review,
        {
            "call_id": args.call_id,
            "approver": args.approver,
            "arguments_sha256": sha,
            "decision": args.decision,
            "reason": args.comment if args.decision == "approve" else args.reason,
            "arguments": edit,
            "signature": signature,
        },
    )
    try:
        record = (await send_review(handle, payload, args.wait)).model_dump(mode="json")
    except DecisionNotRecordedError as err:
        raise _refused(args, err) from None
    except RPCError as err:
        raise rpc_error(err, args.workflow_id, "review") from None
    emit(args, record, render.record_text(args.workflow_id, record, DECISION_FIELDS))
    return 0


async def cmd_sign(args: argparse.Namespace) -> int:
    """Print only the signed `approve`/`reject` signal payload; offline when `--sha256` is given."""
    if args.decision == "reject" and (args.comment is not None or args.edit is not None):
        raise UsageError("--comment and --edit belong to --decision approve (a rejection has --reason)")
    if args.decision == "approve" and args.reason is not None:
        raise UsageError("--reason belongs to --decision reject (an approval has --comment)")
    _require_seen(args, "arguments_sha256")
    key = _key_for(args, required=True)
    assert key is not None
    if args.sha256 is not None:
        sha = args.sha256
        edit, edited = _edit(args, sha)
        if args.run_id is None:
            raise UsageError("--sha256 signs offline: give --run-id too (the run_id of the pending entry)")
        run_id = args.run_id
    else:
        client = await client_for(args)
        handle = client.get_workflow_handle(args.workflow_id)
        call = await _pending_call(handle, args)
        sha = call.arguments_sha256
        edit, edited = _edit(args, sha)
        await confirm(render.decision_preview(args.workflow_id, call, edit, edited), f"{args.decision}?")
        run_id = await run_of(handle, call.run_id)
    signature = _signed(args, key, args.decision, sha, run_id=run_id, edited_sha256=edited, lifetime=args.expires)
    common = {"call_id": args.call_id, "approver": args.approver, "arguments_sha256": sha, "signature": signature}
    if args.decision == "approve":
        payload = _wire(Approve, {**common, "comment": args.comment or "", "arguments": edit})
    else:
        payload = _wire(Reject, {**common, "reason": args.reason or ""})
    # Always JSON, whatever -o says: this output is meant for `--input "$(airlock sign ...)"`.
    write(json.dumps(payload, ensure_ascii=False))
    return 0


async def cmd_answer(args: argparse.Namespace) -> int:
    """Answer one input request with the `answer` update (signed when a key exists); print the recorded answer."""
    if args.action != "accept" and args.content is not None:
        raise UsageError(f"JSON content belongs to an accepted answer, not to --{args.action}")
    _require_seen(args, "question_sha256")
    client = await client_for(args)
    handle = client.get_workflow_handle(args.workflow_id)
    calls: list[PendingApprovalView] = await query(handle, "pending_approvals", args.wait, list[PendingApprovalView])
    call = next((c for c in calls if c.call_id == args.call_id and c.kind == "input"), None)
    if call is None or call.question is None:
        raise DecisionNotRecordedError(
            f"call {args.call_id} has no pending input request in workflow {args.workflow_id}"
        )
    question = call.question
    sha = question.question_sha256
    if args.sha256 is not None and args.sha256 != sha:
        raise DecisionNotRecordedError(
            f"wrong question_sha256 for call {args.call_id} of workflow {args.workflow_id}: the "
            f"pending question is {sha[:12]}…, not {args.sha256[:12]}…"
        )
    if args.action == "accept" and question.mode != "url" and args.content is None:
        raise UsageError("an accepted form answer needs its JSON content (or say --decline / --cancel)")
    if args.sha256 is None:
        preview = render.answer_preview(args.workflow_id, call, sha, args.action, args.content)
        await confirm(preview, f"answer {args.action}?")
    signature = _optional_signature(
        args,
        "answer",
        "answer",
        sha,
        run_id=await run_of(handle, call.run_id),
        answer_sha256=answer_sha256(args.action, args.content),
    )
    payload = _wire(
        Answer,
        {
            "call_id": args.call_id,
            "approver": args.approver,
            "question_sha256": sha,
            "action": args.action,
            "content": args.content,
            "signature": signature,
        },
    )
    try:
        record = (await send_answer(handle, payload, args.wait)).model_dump(mode="json")
    except DecisionNotRecordedError as err:
        raise _refused(args, err) from None
    except RPCError as err:
        raise rpc_error(err, args.workflow_id, "answer") from None
    emit(args, record, render.record_text(args.workflow_id, record, ANSWER_FIELDS))
    return 0


async def _pending_call(handle: WorkflowHandle[Any, Any], args: argparse.Namespace) -> PendingApprovalView:
    calls: list[PendingApprovalView] = await query(handle, "pending_approvals", args.wait, list[PendingApprovalView])
    call = next((c for c in calls if c.call_id == args.call_id), None)
    if call is None:
        raise DecisionNotRecordedError(f"call {args.call_id} is not pending in workflow {args.workflow_id}")
    return call


def _bound_sha256(args: argparse.Namespace, pending: str) -> str:
    # `--sha256` keeps a pasted command bound to what its approver was shown: if the call's
    # arguments changed since (an edit), the command no longer decides it.
    if args.sha256 is not None and args.sha256 != pending:
        raise DecisionNotRecordedError(
            f"wrong arguments_sha256 for call {args.call_id} of workflow {args.workflow_id}: the pending "
            f"arguments are {pending[:12]}…, not {args.sha256[:12]}… (review them: "
            f"{shlex.join(['airlock', 'show', args.workflow_id, args.call_id])})"
        )
    return pending


def _require_seen(args: argparse.Namespace, what: str) -> None:
    # A person signs only what they were shown: off a terminal the command must name the hash
    # they saw (a co-approver's edit changes it, and the stale command is then refused).
    if args.sha256 is None and not interactive():
        raise UsageError(
            f"not on a terminal: give --sha256 HASH, the {what} you reviewed "
            f"({shlex.join(['airlock', 'show', args.workflow_id, args.call_id])} prints it); "
            "on a terminal, airlock shows the call and asks"
        )


def _edit(args: argparse.Namespace, sha: str) -> tuple[dict[str, Any] | None, str | None]:
    """The edit to send and the hash to sign for it; an "edit" that changes nothing is none."""
    if args.edit is None:
        return None, None
    edited = signing.arguments_sha256(args.edit)
    # The gate treats arguments equal to the pending ones as a plain approval, and so checks the
    # signature for one without an edit hash.
    return (None, None) if edited == sha else (args.edit, edited)


def _key_path(args: argparse.Namespace) -> Path:
    return args.key if args.key is not None else signing.default_key_path(args.approver)


def _key_for(args: argparse.Namespace, *, required: bool) -> Ed25519PrivateKey | None:
    path = _key_path(args)
    if args.key is None and not path.exists() and not required:
        return None
    if not path.exists():
        raise CliError(f"no key at {path} (make one with `airlock keygen {args.approver}`, or give --key)")
    return signing.load_private_key(path)


def _wire(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    try:
        message = model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{where}: {first['msg']}") from None
    return message.model_dump(mode="json", exclude_none=True)


def _refused(args: argparse.Namespace, err: DecisionNotRecordedError) -> DecisionNotRecordedError:
    """The run's refusal; for a key it does not know, which key file was used and where to list it."""
    text = f"{err} (workflow {args.workflow_id}, call {args.call_id})"
    path = _key_path(args)
    if "unknown key" not in str(err) or not path.is_file():
        return DecisionNotRecordedError(text)
    key = signing.load_private_key(path)
    settings = settings_for(args)
    dev = settings.data_dir / "dev" / "approvers.toml"
    listed = settings.approvers_file or (dev if dev.is_file() else None)
    where = (
        f"the approvers file {listed}"
        if listed is not None
        else "the approvers file the worker reads (its AIRLOCK_APPROVERS_FILE)"
    )
    if listed == dev:
        where += " (`--dev` writes it at start: to keep an entry, copy it and set AIRLOCK_APPROVERS_FILE)"
    entry = signing.toml_entry(args.approver, key).replace("\n", " ")
    return DecisionNotRecordedError(
        f"{text}; you signed with {path} (key id {signing.key_id_of(key)}), which is not listed for "
        f"{args.approver}: add its public key to {where}, then decide again: {entry}"
    )


def _signed(
    args: argparse.Namespace, key: Ed25519PrivateKey, kind: Kind, sha: str, *, run_id: str, **extra: Any
) -> str:
    """`kind` on the command line's call in run `run_id`, signed by its person (`--as`) with `key`."""
    settings = getattr(args, "settings", None) or settings_for(args)
    return signing.sign_decision(
        key,
        signer=args.approver,
        approver=args.approver,
        namespace=settings.temporal_namespace,
        workflow_id=args.workflow_id,
        run_id=run_id,
        call_id=args.call_id,
        decision=kind,
        arguments_sha256=sha,
        **extra,
    )


def _optional_signature(args: argparse.Namespace, what: str, kind: Kind, sha: str, **extra: Any) -> str | None:
    """The person's signature on `what`, or None (said on stderr) when they have no key."""
    key = _key_for(args, required=False)
    if key is None:
        sys.stderr.write(
            f"airlock: no key for {args.approver} ({_key_path(args)}): sending an unsigned "
            f"{what}, which counts only where decisions are asserted\n"
        )
        return None
    return _signed(args, key, kind, sha, **extra)
