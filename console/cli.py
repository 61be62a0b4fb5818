"""`airlock`: the operator command line — see what waits, decide it (signed), read the audit.

Exit status: 0 done, 1 refused or failed (stderr says why), 2 usage error. stdout carries only
what the command is for: a table for people, or JSON with `-o json`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TerminatedError
from temporalio.exceptions import TimeoutError as TimeoutError_
from temporalio.service import RPCError, RPCStatusCode

from activities.approvers import NAME
from console import follow, signing, waiting
from console.decisions import DecisionRefusedError, send_review, send_update
from console.progress import describe as describe_call
from console.progress import progress_by_call
from console.visible import visible, visible_json, visible_lines
from mcp_servers.tomlfiles import ConfigError, parse_duration
from runtime.codec import EncryptionCodec, PayloadDecryptionError, load_keyring
from runtime.connection import connect
from runtime.settings import Settings
from workflows.arguments import not_json
from workflows.identity import MAX_LIFETIME_SECONDS, Kind
from workflows.input_requests import answer_sha256
from workflows.payloads import Answer, Approve, AuditEntry, PendingApproval, Reject, Review, RunStatus

M = TypeVar("M", bound=BaseModel)

ARGUMENTS_SHORT = 48


class CliError(Exception):
    """A command that could not do what it was asked; the message says why (exit status 1)."""


class RefusedError(CliError):
    """A decision that was refused, by the run or before sending it; printed as `refused: ...`."""


class UsageError(Exception):
    """Arguments that make no sense together (exit status 2)."""


# --- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run one `airlock` command and exit with its status."""
    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader stopped early (`| head`): nothing left to tell it
    sys.stderr.flush()
    # Skipping interpreter teardown avoids a known abort when Temporal's Rust threads outlive
    # finalization (temporalio/sdk-python#300), as worker.py does.
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the command, and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    args.output = args.output or args.global_output or "table"
    try:
        result: int = asyncio.run(args.command(args))
        return result
    except UsageError as err:
        parser.print_usage(sys.stderr)
        complain(f"airlock: error: {err}")
        return 2
    except RefusedError as err:
        complain(f"refused: {err}")
        return 1
    except (CliError, ConfigError, signing.KeyFileError, PayloadDecryptionError) as err:
        complain(f"airlock: {err}")
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The `airlock` argument parser: global options, then one subcommand."""
    parser = argparse.ArgumentParser(prog="airlock", description="Airlock operator CLI")
    parser.add_argument("--address", help="Temporal frontend host:port (default: AIRLOCK_TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", help="Temporal namespace (default: AIRLOCK_TEMPORAL_NAMESPACE)")
    parser.add_argument(
        "--timeout",
        dest="wait",
        type=_positive_seconds,
        default=timedelta(seconds=10),
        help="seconds to wait for each query or update (default: 10)",
    )
    parser.add_argument("-o", "--output", dest="global_output", choices=("table", "json"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default=None,
        help="table (for people, the default) or json (for machines)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    keygen = commands.add_parser("keygen", parents=[common], help="make an Ed25519 key for signing decisions")
    keygen.add_argument("name", type=_name, metavar="NAME")
    keygen.add_argument("--out", type=Path, help="where to write the private key (default ~/.config/airlock/NAME.key)")
    keygen.set_defaults(command=cmd_keygen)

    pending = commands.add_parser("pending", parents=[common], help="every call waiting for a decision")
    pending.add_argument("--agent", type=_agent, help="only runs of this agent")
    pending.set_defaults(command=cmd_pending)

    show = commands.add_parser("show", parents=[common], help="one run: state, pending calls, audit")
    show.add_argument("workflow_id", metavar="WORKFLOW_ID")
    show.add_argument("call_id", metavar="CALL_ID", nargs="?")
    show.set_defaults(command=cmd_show)

    for name, text in (("approve", "approve one pending call"), ("reject", "reject one pending call")):
        decide = commands.add_parser(name, parents=[common], help=f"{text} (signed, with the review update)")
        _decision_arguments(decide)
        if name == "approve":
            decide.add_argument("--comment", default="", help="why, for the audit")
            decide.add_argument(
                "--edit",
                type=_json_object,
                metavar="JSON",
                help="arguments to run the call with instead (a whole JSON object)",
            )
            decide.set_defaults(command=cmd_decide, decision="approve", reason=None)
        else:
            decide.add_argument("--reason", required=True, help="why; the model hears it")
            decide.set_defaults(command=cmd_decide, decision="reject", comment=None, edit=None)

    sign = commands.add_parser(
        "sign", parents=[common], help="print a signed approve/reject signal payload (for any Temporal client)"
    )
    _decision_arguments(sign)
    sign.add_argument("--decision", required=True, choices=("approve", "reject"))
    sign.add_argument("--comment", help="approve: why, for the audit")
    sign.add_argument("--reason", help="reject: why; the model hears it")
    sign.add_argument("--edit", type=_json_object, metavar="JSON", help="approve: arguments to run the call with")
    sign.add_argument(
        "--expires",
        type=_lifetime,
        default=signing.DEFAULT_LIFETIME,
        help="how long the signature is good for (default 10m, at most 7d)",
    )
    sign.add_argument(
        "--run-id",
        help="the run that shows the call (its pending entry's run_id); needed with --sha256",
    )
    sign.set_defaults(command=cmd_sign)

    answer = commands.add_parser(
        "answer", parents=[common], help="answer a server's input request (signed, with the answer update)"
    )
    _decision_arguments(
        answer,
        who="who answers",
        shown="the question_sha256 you were shown; refused unless it is still the pending question "
        "(required off a terminal; on one, the question is shown and you are asked)",
    )
    answer.add_argument(
        "content",
        metavar="JSON",
        nargs="?",
        type=_json_object,
        help="the form's values (a JSON object); none for --decline, --cancel or a URL request",
    )
    action = answer.add_mutually_exclusive_group()
    action.add_argument(
        "--decline",
        dest="action",
        action="store_const",
        const="decline",
        help="say no to the request (the server hears decline)",
    )
    action.add_argument(
        "--cancel",
        dest="action",
        action="store_const",
        const="cancel",
        help="dismiss the request (the server hears cancel)",
    )
    answer.set_defaults(command=cmd_answer, action="accept")

    audit = commands.add_parser("audit", parents=[common], help="one run's audit trail")
    audit.add_argument("workflow_id", metavar="WORKFLOW_ID")
    audit.set_defaults(command=cmd_audit)
    _add_mcp_commands(commands, common)
    check = commands.add_parser("check", parents=[common], help="every start-up check the worker makes; 1 on a problem")
    check.set_defaults(command=_cmd_check)

    inbox = commands.add_parser("inbox", help="serve the approval inbox web page (loopback by default)")
    inbox.add_argument("--host", help="address to bind (default: AIRLOCK_INBOX_HOST, 127.0.0.1)")
    inbox.add_argument("--port", type=int, help="port (default: AIRLOCK_INBOX_PORT, 8234)")
    inbox.set_defaults(command=cmd_inbox, output=None)

    codec = commands.add_parser("codec-server", help="decode encrypted payloads for the Web UI and `temporal`")
    codec.add_argument("--host", help="address to bind (default: AIRLOCK_CODEC_SERVER_HOST, 127.0.0.1)")
    codec.add_argument("--port", type=int, help="port (default: AIRLOCK_CODEC_SERVER_PORT, 8235)")
    codec.add_argument(
        "--web-origin",
        action="append",
        metavar="ORIGIN",
        help="a Web UI origin browsers may call from; repeatable "
        "(default: AIRLOCK_CODEC_SERVER_ORIGINS, the local dev UI)",
    )
    codec.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="file (mode 0600) with the bearer token requests must carry "
        "(default: AIRLOCK_CODEC_SERVER_TOKEN_FILE or AIRLOCK_CODEC_SERVER_TOKEN)",
    )
    codec.set_defaults(command=cmd_codec_server, output=None)

    start = commands.add_parser("run", parents=[common], help="start a run of an agent (and follow it)")
    start.add_argument("agent", type=_agent, metavar="AGENT")
    start.add_argument("input", metavar="INPUT")
    start.add_argument("--id", dest="workflow_id", help="workflow id (default: AGENT-<random>)")
    start.add_argument("--requester", default=getpass.getuser(), help="who asks (default: your user name)")
    start.add_argument("--follow", action="store_true", help="show progress and the approve command until it ends")
    start.set_defaults(command=cmd_run)
    return parser


def _decision_arguments(
    parser: argparse.ArgumentParser,
    *,
    who: str = "who decides",
    shown: str = (
        "the arguments_sha256 you were shown; refused unless it is still the pending one "
        "(required off a terminal; on one, the call is shown and you are asked)"
    ),
) -> None:
    """The arguments every signed message takes: which run and call, who signs it, what they saw."""
    parser.add_argument("workflow_id", metavar="WORKFLOW_ID")
    parser.add_argument("call_id", metavar="CALL_ID")
    parser.add_argument(
        "--as",
        dest="approver",
        required=True,
        type=_name,
        metavar="NAME",
        help=f"{who} (a name in approvers.toml)",
    )
    parser.add_argument("--key", type=Path, help="private key (default ~/.config/airlock/NAME.key)")
    parser.add_argument("--sha256", type=_sha256, metavar="HASH", help=shown)


def _name(text: str) -> str:
    if not NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a name (letters, digits and _.@+-)")
    return text


def _agent(text: str) -> str:
    if not waiting.AGENT_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an agent name")
    return text


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError("a SHA-256 is 64 lowercase hex digits")
    return text


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err.msg} at position {err.pos}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the arguments must be a JSON object")
    if (problem := not_json(value)) is not None:
        # NaN or a lone surrogate: the run refuses it, and it has no hash to sign.
        raise argparse.ArgumentTypeError(f"not valid JSON: {problem}")
    return value


def _positive_seconds(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return timedelta(seconds=value)


def _lifetime(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    # The workflow refuses a signature that claims longer; better to say so before signing.
    if not 1 <= seconds <= MAX_LIFETIME_SECONDS:
        raise argparse.ArgumentTypeError("a signature lives at least 1s and at most 7d")
    return timedelta(seconds=seconds)


# --- commands ----------------------------------------------------------------------------------


def _add_mcp_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `airlock mcp tools|call|login` on the CLI's subcommand table."""
    group = commands.add_parser("mcp", help="check MCP servers the way the worker connects to them")
    sub = group.add_subparsers(title="mcp commands", metavar="COMMAND", required=True)
    tools = sub.add_parser("tools", parents=[common], help="a server's tools, annotations and policy")
    tools.add_argument("server", metavar="SERVER")
    tools.add_argument("--agent", help="the policy this agent's [tools] gives each tool")
    tools.set_defaults(command=_mcp_command("tools"))
    call = sub.add_parser("call", parents=[common], help="call one tool (operators only; no gate)")
    call.add_argument("server", metavar="SERVER")
    call.add_argument("tool", metavar="TOOL")
    call.add_argument("arguments", metavar="JSON", nargs="?", default="{}")
    call.add_argument("--answer", metavar="JSON", help="the answer to a server's input request (elicitation)")
    call.set_defaults(command=_mcp_command("call"))
    login = sub.add_parser("login", parents=[common], help="one-time OAuth login for a server (PKCE, loopback)")
    login.add_argument("server", metavar="SERVER")
    login.set_defaults(command=_mcp_command("login"))


def _mcp_command(name: str) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """`airlock mcp NAME`, loading the MCP SDK (a second of start-up) only when it runs."""

    async def command(args: argparse.Namespace) -> int:
        from console import mcp

        result: int = await getattr(mcp, f"cmd_{name}")(args)
        return result

    return command


async def _cmd_check(args: argparse.Namespace) -> int:
    """`airlock check`, loading the worker's checks (and the MCP SDK) only when it runs."""
    from console.check import cmd_check

    return await cmd_check(args)


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


async def cmd_pending(args: argparse.Namespace) -> int:
    """Every call waiting across all runs (console.waiting lists them for the inbox too)."""
    client = await _client(args)

    def skipped(workflow_id: str, why: str) -> None:
        complain(f"airlock: skipped {workflow_id}: {why}")

    try:
        calls = await waiting.waiting_calls(
            client, agent=args.agent, wait=args.wait, on_skip=skipped, signer=signing.printed_signer(_settings(args))
        )
    except waiting.ListingError as err:
        raise CliError(str(err)) from None
    now = datetime.now(UTC)
    rows = []
    for call in calls:
        view = _known(PendingApproval, call)
        shown = json.dumps(view.arguments, ensure_ascii=False)
        if view.kind == "input" and view.question is not None:
            shown = f"input: {view.question.message}"
        rows.append(
            [
                call["workflow_id"],
                view.call_id,
                view.agent,
                f"{view.server}.{view.tool}",
                _short(shown, ARGUMENTS_SHORT),
                waiting.age(now - view.requested_at),
                waiting.until(view.deadline, now),
                "answer" if view.kind == "input" else str(view.approvals_needed),
            ]
        )
    headers = ["WORKFLOW", "CALL", "AGENT", "TOOL", "ARGUMENTS", "WAITING", "DEADLINE", "NEEDS"]
    emit(args, calls, table(headers, rows) if rows else "nothing is waiting for a decision")
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    """One run: its state, its pending calls with full arguments and hash, and its audit."""
    client = await _client(args)
    handle = client.get_workflow_handle(args.workflow_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        raise _rpc_error(err, handle.id, "describe") from None
    kind = description.workflow_type
    # Queries are answered by a worker: with none polling the run's queue, each would time out
    # with a different transport error. Say so once, at once.
    polled = await follow.has_poller(client, description.task_queue)
    failure = await _failure(client, description)
    if not polled:
        if failure is None:
            raise CliError(
                f"workflow {args.workflow_id} is {_state_of(description)}, but no worker polls task "
                f"queue {description.task_queue!r}: start one (`python worker.py`), or check AIRLOCK_TASK_QUEUE"
            )
        # Why it failed is in the history: no worker is needed to say that much.
        emit(
            args,
            {"workflow_id": args.workflow_id, "type": kind, "state": _state_of(description), "failure": failure},
            fields(
                [
                    ("workflow", args.workflow_id),
                    ("state", _state_of(description)),
                    ("failed", failure),
                    ("details", f"no worker polls task queue {description.task_queue!r} to answer status and audit"),
                ]
            ),
        )
        return 0
    if kind == "PipelineWorkflow":
        return await _show_pipeline(args, handle)
    status, calls, audit = await asyncio.gather(
        _query(handle, "status", args.wait, dict),
        _query(handle, "pending_approvals", args.wait),
        _query(handle, "audit", args.wait),
    )
    if args.call_id is not None:
        calls = [c for c in calls if c.get("call_id") == args.call_id]
        audit = [e for e in audit if e.get("call_id") == args.call_id]
        if not calls and not audit:
            raise CliError(f"workflow {args.workflow_id} has no call {args.call_id!r}")
    for call in calls:
        waiting.add_commands(args.workflow_id, call, signing.printed_signer(_settings(args)))
    state = _known(RunStatus, status)
    parts = [
        fields(
            [
                ("workflow", args.workflow_id),
                ("state", state.state),
                ("agent", state.agent),
                ("turn", str(state.turn)),
                ("tool calls", str(state.tool_calls)),
                ("pending", str(state.pending)),
                ("requester", _requester(state.requester, state.requester_proof)),
                *([("failed", failure)] if failure is not None else []),
            ]
        )
    ]
    now = datetime.now(UTC)
    progress = await progress_by_call(client, handle) if state.in_flight else {}
    if state.in_flight:
        parts.append(
            "in flight\n" + "\n".join(f"  {describe_call(c, progress.get(c.call_id))}" for c in state.in_flight)
        )
    for call in calls:
        parts.append(_pending_block(args.workflow_id, call, now))
    parts.append("audit\n" + (_audit_table(audit) if audit else "(empty)"))
    emit(
        args,
        {
            "workflow_id": args.workflow_id,
            "type": kind,
            "status": status,
            "failure": failure,
            "pending": calls,
            "progress": progress,
            "audit": audit,
        },
        "\n\n".join(parts),
    )
    return 0


def _state_of(description: WorkflowExecutionDescription) -> str:
    """The run's execution status as people say it: `running`, `failed`, `timed out`."""
    status = description.status
    return status.name.lower().replace("_", " ") if status is not None else "unknown"


async def _failure(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """Why a run that ended badly ended: `UnknownAgentError: unknown agent 'nosuch' ...`; None otherwise."""
    if description.status not in (
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    ):
        return None
    handle = client.get_workflow_handle(description.id, run_id=description.run_id)
    try:
        await handle.result(follow_runs=False)
    except WorkflowFailureError as err:
        cause = err.cause
        while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
            cause = cause.cause  # the activity's or child's own failure says why
        if isinstance(cause, ApplicationError):
            return f"{cause.type or 'ApplicationError'}: {cause.message}"
        if isinstance(cause, TerminatedError):
            return f"terminated: {await _terminate_reason(client, description) or 'no reason given'}"
        if isinstance(cause, TimeoutError_):
            return f"timed out ({cause.type.name.lower() if cause.type else 'run timeout'})"
        return f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
    except RPCError as err:
        return f"{_state_of(description)} (its failure could not be read: {err.message})"
    return None


async def _terminate_reason(client: Client, description: WorkflowExecutionDescription) -> str:
    """The reason whoever terminated the run gave (the last event of its history)."""
    reply = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
            maximum_page_size=1,
        )
    )
    events = reply.history.events
    return events[0].workflow_execution_terminated_event_attributes.reason if events else ""


async def _show_pipeline(args: argparse.Namespace, handle: WorkflowHandle[Any, Any]) -> int:
    status = await _query(handle, "status", args.wait, dict)
    steps = [
        [s.get("name", ""), s.get("agent", ""), s.get("status", ""), s.get("workflow_id", "")]
        for s in status.get("steps", [])
    ]
    waiting = [[p["workflow_id"], p["call_id"], f"{p['server']}.{p['tool']}"] for p in status.get("pending", [])]
    text = fields(
        [
            ("workflow", args.workflow_id),
            ("pipeline", str(status.get("pipeline"))),
            ("state", str(status.get("state"))),
            ("current", str(status.get("current") or "-")),
        ]
    )
    text += "\n\n" + table(["STEP", "AGENT", "STATUS", "WORKFLOW"], steps)
    if waiting:
        # A child's own `pending_approvals` is the authority on what is decided and its hash.
        text += "\n\nwaiting in child runs (decide with `airlock show CHILD`):\n"
        text += table(["WORKFLOW", "CALL", "TOOL"], waiting)
    emit(args, {"workflow_id": args.workflow_id, "type": "PipelineWorkflow", "status": status}, text)
    return 0


async def cmd_decide(args: argparse.Namespace) -> int:
    """Approve or reject one pending call with the `review` update; print the recorded decision."""
    _require_seen(args, "arguments_sha256")
    client = await _client(args)
    handle = client.get_workflow_handle(args.workflow_id)
    call = await _pending_call(handle, args)
    sha = _bound_sha256(args, call["arguments_sha256"])
    edit, edited = _edit(args, sha)
    if args.sha256 is None:
        await _confirm(_decision_preview(args, call, edit, edited), f"{args.decision}?")
    signature = _optional_signature(
        args, "decision", args.decision, sha, run_id=await _run_of(handle, call), edited_sha256=edited
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
        record = await send_review(handle, payload, args.wait)
    except DecisionRefusedError as err:
        raise _refused(args, err) from None
    except RPCError as err:
        raise _rpc_error(err, args.workflow_id, "review") from None
    rows = [
        (name, _text(record.get(name)))
        for name in (
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
        if name in record
    ]
    emit(args, record, fields([("workflow", args.workflow_id), *rows]))
    return 0


def _refused(args: argparse.Namespace, err: DecisionRefusedError) -> RefusedError:
    """The run's refusal; for a key it does not know, which key file was used and where to list it."""
    text = f"{err} (workflow {args.workflow_id}, call {args.call_id})"
    path = _key_path(args)
    if "unknown key" not in str(err) or not path.is_file():
        return RefusedError(text)
    key = signing.load_private_key(path)
    settings = _settings(args)
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
    return RefusedError(
        f"{text}; you signed with {path} (key id {signing.key_id_of(key)}), which is not listed for "
        f"{args.approver}: add its public key to {where}, then decide again: {entry}"
    )


def _signed(
    args: argparse.Namespace, key: Ed25519PrivateKey, kind: Kind, sha: str, *, run_id: str, **extra: Any
) -> str:
    """`kind` on the command line's call in run `run_id`, signed by its person (`--as`) with `key`."""
    settings = getattr(args, "settings", None) or _settings(args)
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
        client = await _client(args)
        handle = client.get_workflow_handle(args.workflow_id)
        call = await _pending_call(handle, args)
        sha = call["arguments_sha256"]
        edit, edited = _edit(args, sha)
        await _confirm(_decision_preview(args, call, edit, edited), f"{args.decision}?")
        run_id = await _run_of(handle, call)
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
    client = await _client(args)
    handle = client.get_workflow_handle(args.workflow_id)
    calls: list[dict[str, Any]] = await _query(handle, "pending_approvals", args.wait)
    call = next((c for c in calls if c.get("call_id") == args.call_id and c.get("kind") == "input"), None)
    if call is None or not isinstance(call.get("question"), dict):
        raise RefusedError(f"call {args.call_id} has no pending input request in workflow {args.workflow_id}")
    question = call["question"]
    sha = str(question.get("question_sha256"))
    if args.sha256 is not None and args.sha256 != sha:
        raise RefusedError(
            f"wrong question_sha256 for call {args.call_id} of workflow {args.workflow_id}: the "
            f"pending question is {sha[:12]}…, not {args.sha256[:12]}…"
        )
    if args.action == "accept" and question.get("mode") != "url" and args.content is None:
        raise UsageError("an accepted form answer needs its JSON content (or say --decline / --cancel)")
    if args.sha256 is None:
        await _confirm(_answer_preview(args, call, sha), f"answer {args.action}?")
    signature = _optional_signature(
        args,
        "answer",
        "answer",
        sha,
        run_id=await _run_of(handle, call),
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
        record = await send_update(handle, "answer", payload, args.wait)
    except DecisionRefusedError as err:
        raise _refused(args, err) from None
    except RPCError as err:
        raise _rpc_error(err, args.workflow_id, "answer") from None
    rows = [
        (name, _text(record.get(name)))
        for name in ("call_id", "action", "actor", "at", "identity", "question_sha256", "answer_sha256")
        if name in record
    ]
    emit(args, record, fields([("workflow", args.workflow_id), *rows]))
    return 0


async def cmd_audit(args: argparse.Namespace) -> int:
    """The run's audit trail as a table."""
    client = await _client(args)
    handle = client.get_workflow_handle(args.workflow_id)
    audit = await _query(handle, "audit", args.wait)
    emit(args, audit, _audit_table(audit) if audit else "(empty)")
    return 0


async def cmd_inbox(args: argparse.Namespace) -> int:
    """Serve the inbox until interrupted (console/inbox does the work)."""
    from console import inbox  # the web stack loads only for this command
    from runtime import logs

    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)  # stderr: stdout is for what a command prints
    overrides = {"inbox_host": args.host, "inbox_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    app = inbox.make_app(await connect(settings), settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sys.stderr.write(f"airlock: inbox on {inbox.inbox_url(settings)}\n")
    await inbox.serve(app, settings, stop)
    return 0


async def cmd_codec_server(args: argparse.Namespace) -> int:
    """Serve the codec-server protocol until interrupted (console/codec_server does the work)."""
    from console import codec_server
    from console.inbox import serve  # the web stack loads only for this command
    from runtime import logs
    from runtime.redaction import Redactor

    settings = _settings(args)
    if settings.codec_keys_file is None:
        raise CliError("the codec server needs the keys the worker encrypts with: set AIRLOCK_CODEC_KEYS_FILE")
    codec = EncryptionCodec(load_keyring(settings.codec_keys_file))
    origins = codec_server.origins(args.web_origin or settings.codec_server_origins)
    token = codec_server.token(settings, args.token_file)
    # One line per request on stderr (stdout stays empty), the token scrubbed should anything echo it.
    logs.configure(settings.log_level, settings.log_format, redactor=Redactor([token]))
    app = codec_server.make_app(
        codec, token=token, origins=origins, max_body_bytes=settings.codec_server_max_body_bytes
    )
    host = args.host or settings.codec_server_host
    port = settings.codec_server_port if args.port is None else args.port
    sock = codec_server.listen(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = sock.getsockname()[1]
    sys.stderr.write(
        f"airlock: codec server on http://{host}:{bound} (keys {', '.join(codec.keyring.keys)}; "
        f"Web UI origins {', '.join(origins) or 'none'})\n"
    )
    await serve(app, settings, stop, sock)
    return 0


async def cmd_run(args: argparse.Namespace) -> int:
    """`airlock run`: start a run; with --follow, report it until it ends (exit 1 if it failed).

    With `AIRLOCK_TRACING=true` the run's trace starts here, at the client's start (following it
    is not traced: every status poll would be a trace of its own).
    """
    client = await _client(args)
    if not args.settings.tracing:
        return await _run(args, client, client)
    # Loaded only when asked for: the OpenTelemetry SDK and exporter add a fifth to every start.
    from runtime import tracing

    tracer = tracing.Tracing(args.settings, service="airlock-cli")
    try:
        return await _run(args, client, tracer.client(client))
    finally:
        tracer.shutdown()


async def _run(args: argparse.Namespace, client: Client, starter: Client) -> int:
    try:
        started = await follow.start(
            starter,
            args.settings.task_queue,
            args.agent,
            args.input,
            requester=args.requester,
            workflow_id=args.workflow_id,
        )
    except RPCError as err:
        raise CliError(f"could not start the run: {err.message}") from None
    handle: WorkflowHandle[Any, Any] = WorkflowHandle(
        client,
        started.id,
        result_run_id=started.result_run_id,
        first_execution_run_id=started.first_execution_run_id,
    )
    if not args.follow:
        emit(
            args,
            {"workflow_id": handle.id, "run_id": handle.result_run_id},
            f"started {handle.id} (follow it: {shlex.join(['airlock', 'show', handle.id])})",
        )
        return 0
    quiet = args.output == "json"
    if not quiet:
        write(f"▶ started {handle.id} (agent {args.agent}, task queue {args.settings.task_queue})")
    completed, result = await follow.follow(
        client,
        handle,
        args.settings.task_queue,
        (lambda _line: None) if quiet else follow.say,
        signing.printed_signer(args.settings),
    )
    if quiet:
        emit(args, {"workflow_id": handle.id, "completed": completed, "result": result}, "")
    elif completed:
        write(f"■ completed: {result.get('output', '')}")
    else:
        write(visible(f"✘ failed: {result}"))
    return 0 if completed else 1


# --- Temporal ----------------------------------------------------------------------------------


async def _client(args: argparse.Namespace) -> Client:
    settings = _settings(args)
    args.settings = settings
    return await connect(settings)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings()
    except ValidationError as err:
        first = err.errors()[0]
        raise CliError(f"bad setting AIRLOCK_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    overrides = {"temporal_address": args.address, "temporal_namespace": args.namespace}
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


async def _query(handle: WorkflowHandle[Any, Any], name: str, wait: timedelta, result_type: type = list) -> Any:
    try:
        return await handle.query(name, result_type=result_type, rpc_timeout=wait)
    except WorkflowQueryFailedError as err:
        raise CliError(f"workflow {handle.id} cannot answer {name}: {err}") from None
    except RPCError as err:
        raise _rpc_error(err, handle.id, name) from err


def _rpc_error(err: RPCError, workflow_id: str, what: str) -> CliError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return CliError(f"no such workflow: {workflow_id}")
    if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
        # Queries and updates are answered by a worker; none answering is the usual reason.
        return CliError(f"workflow {workflow_id} did not answer {what} in time (is an Airlock worker running?)")
    return CliError(f"{what} of workflow {workflow_id} failed: {err.message}")


async def _run_of(handle: WorkflowHandle[Any, Any], call: dict[str, Any]) -> str:
    """The run a signature binds: the one the pending entry names, else the workflow's current run."""
    named = call.get("run_id")
    if isinstance(named, str) and named:
        return named
    try:
        description = await handle.describe()
    except RPCError as err:
        raise _rpc_error(err, handle.id, "describe") from None
    return description.run_id


async def _pending_call(handle: WorkflowHandle[Any, Any], args: argparse.Namespace) -> dict[str, Any]:
    calls: list[dict[str, Any]] = await _query(handle, "pending_approvals", args.wait)
    call = next((c for c in calls if c.get("call_id") == args.call_id), None)
    if call is None:
        raise RefusedError(f"call {args.call_id} is not pending in workflow {args.workflow_id}")
    return call


def _bound_sha256(args: argparse.Namespace, pending: str) -> str:
    # `--sha256` keeps a pasted command bound to what its approver was shown: if the call's
    # arguments changed since (an edit), the command no longer decides it.
    if args.sha256 is not None and args.sha256 != pending:
        raise RefusedError(
            f"wrong arguments_sha256 for call {args.call_id} of workflow {args.workflow_id}: the pending "
            f"arguments are {pending[:12]}…, not {args.sha256[:12]}… (review them: "
            f"{shlex.join(['airlock', 'show', args.workflow_id, args.call_id])})"
        )
    return pending


def interactive() -> bool:
    """Whether a person is at a terminal: stdin and stdout both TTYs."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _require_seen(args: argparse.Namespace, what: str) -> None:
    # A person signs only what they were shown: off a terminal the command must name the hash
    # they saw (a co-approver's edit changes it, and the stale command is then refused).
    if args.sha256 is None and not interactive():
        raise UsageError(
            f"not on a terminal: give --sha256 HASH, the {what} you reviewed "
            f"({shlex.join(['airlock', 'show', args.workflow_id, args.call_id])} prints it); "
            "on a terminal, airlock shows the call and asks"
        )


async def _confirm(preview: str, question: str) -> None:
    """Show `preview` on the terminal and ask `question [y/N]`; anything but yes sends nothing."""
    write(preview)
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed: nothing sent")


def _decision_preview(
    args: argparse.Namespace, call: dict[str, Any], edit: dict[str, Any] | None, edited: str | None
) -> str:
    """What the person is about to sign: the call, its arguments and their hash (and an edit's)."""
    view = _known(PendingApproval, call)
    text = fields(
        [
            ("workflow", args.workflow_id),
            ("call", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
            (
                "approvals",
                f"{view.approvals_needed} more needed"
                + (f" (approved by {', '.join(view.approved_by)})" if view.approved_by else ""),
            ),
            ("arguments_sha256", view.arguments_sha256),
        ]
    )
    text += "\narguments:\n" + _indented(view.arguments)
    if edit is not None and edited is not None:
        text += f"\nedited to (sha256 {edited}):\n" + _indented(edit)
    return text


def _answer_preview(args: argparse.Namespace, call: dict[str, Any], sha: str) -> str:
    """What the person is about to sign: the question, its hash, and the answer."""
    view = _known(PendingApproval, call)
    question = view.question
    pairs = [
        ("workflow", args.workflow_id),
        ("input request", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
        ("message", question.message if question is not None else "-"),
        ("question_sha256", sha),
        ("answer", args.action),
    ]
    if question is not None and question.mode == "url":
        pairs.insert(3, ("url", question.url or "-"))
    text = fields(pairs)
    if args.content is not None:
        text += "\ncontent:\n" + _indented(args.content)
    return text


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


# --- output ------------------------------------------------------------------------------------


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Write the command's result: `data` as JSON with `-o json`, else the readable `text`."""
    if args.output == "json":
        # Exact JSON still: a hidden character in a string becomes its `\\u` escape.
        write(visible_json(json.dumps(data, indent=2, ensure_ascii=False, default=str)))
    else:
        write(text)


def write(text: str) -> None:
    """One block of output on stdout (logs and errors go to stderr), hidden characters escaped."""
    sys.stdout.write(visible_lines(text) + "\n")


def complain(text: str) -> None:
    """One message on stderr, on one line: a reason from a run cannot forge lines or move the cursor."""
    sys.stderr.write(visible(text) + "\n")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns, two spaces apart; no colour, so it reads the same in a pipe."""
    clean = [[_one_line(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *clean, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *clean]
    ]
    return "\n".join(lines)


def fields(pairs: list[tuple[str, str]]) -> str:
    """Name/value lines, values aligned."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name.ljust(width)}  {_one_line(value)}".rstrip() for name, value in pairs)


def _pending_block(workflow_id: str, call: dict[str, Any], now: datetime) -> str:
    view = _known(PendingApproval, call)
    if view.kind == "input" and view.question is not None:
        return _input_block(call, view, now)
    head = fields(
        [
            ("call", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
            ("requester", _requester(view.requester, view.requester_proof)),
            ("requested", f"{_at(view.requested_at)} ({waiting.age(now - view.requested_at)} ago)"),
            ("deadline", f"{_at(view.deadline)} ({waiting.until(view.deadline, now)})" if view.deadline else "-"),
            (
                "approvals",
                f"{view.approvals_needed} more needed"
                + (f" (approved by {', '.join(view.approved_by)})" if view.approved_by else ""),
            ),
            ("arguments_sha256", view.arguments_sha256),
            ("approve", call["approve_command"]),
            ("reject", call["reject_command"]),
        ]
    )
    return head + "\narguments:\n" + _indented(view.arguments)


def _requester(name: str | None, proof: str) -> str:
    """Who requested a run, and how that is known: `carol (claimed)` (a client typed it)."""
    return f"{name} ({proof})" if name is not None else "-"


def _indented(value: Any) -> str:
    """`value` as indented JSON lines, each line's hidden characters escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return "\n".join("  " + visible(line) for line in text.splitlines())


def _input_block(call: dict[str, Any], view: PendingApproval, now: datetime) -> str:
    question = view.question
    assert question is not None
    pairs = [
        ("input request", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
        ("requester", _requester(view.requester, view.requester_proof)),
        ("message", question.message),
        ("requested", f"{_at(view.requested_at)} ({waiting.age(now - view.requested_at)} ago)"),
        ("deadline", f"{_at(view.deadline)} ({waiting.until(view.deadline, now)})" if view.deadline else "-"),
        ("question_sha256", question.question_sha256),
        ("answer", call.get("answer_command", "-")),
    ]
    if question.mode == "url":
        pairs.insert(3, ("url", question.url or "-"))
    text = fields(pairs)
    if question.requested_schema is not None:
        schema = json.dumps(question.requested_schema, indent=2, sort_keys=True, ensure_ascii=False)
        text += "\nrequested schema:\n" + "\n".join("  " + visible(line) for line in schema.splitlines())
    return text


def _audit_table(audit: list[dict[str, Any]]) -> str:
    rows = []
    for raw in audit:
        entry = _known(AuditEntry, raw)
        rows.append(
            [
                _at(entry.at),
                entry.event,
                entry.call_id,
                entry.actor or "-",
                entry.identity or "-",
                _short(
                    entry.reason
                    or (f"outcome {entry.outcome}" if entry.outcome else "")
                    or (f"action {entry.action}" if entry.action else "-"),
                    60,
                ),
                (entry.arguments_sha256 or "-")[:12],
            ]
        )
    return table(["AT", "EVENT", "CALL", "ACTOR", "IDENTITY", "REASON", "HASH"], rows)


def _known(model: type[M], raw: dict[str, Any]) -> M:
    # A newer worker may add fields; the CLI shows what it knows and passes the rest through in JSON.
    try:
        return model.model_validate({k: v for k, v in raw.items() if k in model.model_fields})
    except ValidationError as err:
        raise CliError(f"unexpected {model.__name__} from the run: {err.errors()[0]['msg']}") from None


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _one_line(text: str) -> str:
    # A model or a sender chose these strings: a newline or escape must not forge table rows,
    # and what is there is shown (escaped), not dropped.
    return visible(text)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _at(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"
