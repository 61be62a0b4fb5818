"""`airlock`: the operator command line — its parser, and `main`, which runs one command.

Each family of commands lives in its own module: `console.runs` (run, pending, show, audit),
`console.decide` (approve, reject, answer, sign, keygen), `console.mcp` and `console.ops`
(inbox, codec-server, check); `console.render` makes what they show.

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
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from activities.approvers import NAME
from console import decide, ops, runs, signing, waiting
from console.errors import CliError, DecisionNotRecordedError, UsageError
from console.terminal import complain
from mcp_servers.tomlfiles import ConfigError, parse_duration
from runtime.codec import PayloadDecryptionError
from workflows.arguments import not_json
from workflows.identity import MAX_LIFETIME_SECONDS

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
    except DecisionNotRecordedError as err:
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
    parser.add_argument(
        "--address",
        help="Temporal frontend host:port (default: AIRLOCK_TEMPORAL_ADDRESS, else the `temporal` CLI profile)",
    )
    parser.add_argument(
        "--namespace", help="Temporal namespace (default: AIRLOCK_TEMPORAL_NAMESPACE, else the `temporal` CLI profile)"
    )
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
    keygen.set_defaults(command=decide.cmd_keygen)

    pending = commands.add_parser("pending", parents=[common], help="every call waiting for a decision")
    pending.add_argument("--agent", type=_agent, help="only runs of this agent")
    pending.set_defaults(command=runs.cmd_pending)

    show = commands.add_parser("show", parents=[common], help="one run: state, pending calls, audit")
    show.add_argument("workflow_id", metavar="WORKFLOW_ID")
    show.add_argument("call_id", metavar="CALL_ID", nargs="?")
    show.add_argument("--follow", action="store_true", help="then print the run's events as they happen, until it ends")
    show.add_argument(
        "--after", type=int, metavar="SEQ", help="with --follow: start at this event offset (default: new events only)"
    )
    show.set_defaults(command=runs.cmd_show)

    for name, text in (("approve", "approve one pending call"), ("reject", "reject one pending call")):
        verdict = commands.add_parser(name, parents=[common], help=f"{text} (signed, with the review update)")
        _decision_arguments(verdict)
        if name == "approve":
            verdict.add_argument("--comment", default="", help="why, for the audit")
            verdict.add_argument(
                "--edit",
                type=_json_object,
                metavar="JSON",
                help="arguments to run the call with instead (a whole JSON object)",
            )
            verdict.set_defaults(command=decide.cmd_decide, decision="approve", reason=None)
        else:
            verdict.add_argument("--reason", required=True, help="why; the model hears it")
            verdict.set_defaults(command=decide.cmd_decide, decision="reject", comment=None, edit=None)

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
    sign.set_defaults(command=decide.cmd_sign)

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
    answer.set_defaults(command=decide.cmd_answer, action="accept")

    audit = commands.add_parser("audit", parents=[common], help="one run's audit trail")
    audit.add_argument("workflow_id", metavar="WORKFLOW_ID")
    audit.set_defaults(command=runs.cmd_audit)
    _add_mcp_commands(commands, common)
    _add_policy_commands(commands)
    check = commands.add_parser("check", parents=[common], help="every start-up check the worker makes; 1 on a problem")
    check.set_defaults(command=ops.cmd_check)

    inbox = commands.add_parser("inbox", help="serve the approval inbox web page (loopback by default)")
    inbox.add_argument("--host", help="address to bind (default: AIRLOCK_INBOX_HOST, 127.0.0.1)")
    inbox.add_argument("--port", type=int, help="port (default: AIRLOCK_INBOX_PORT, 8234)")
    inbox.set_defaults(command=ops.cmd_inbox, output=None)

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
    codec.set_defaults(command=ops.cmd_codec_server, output=None)

    start = commands.add_parser("run", parents=[common], help="start a run of an agent (and follow it)")
    start.add_argument("agent", type=_agent, metavar="AGENT")
    start.add_argument("input", metavar="INPUT")
    start.add_argument("--id", dest="workflow_id", help="workflow id (default: AGENT-<random>)")
    start.add_argument("--requester", default=getpass.getuser(), help="who asks (default: your user name)")
    start.add_argument("--follow", action="store_true", help="show progress and the approve command until it ends")
    start.set_defaults(command=runs.cmd_run)
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


def _add_mcp_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `airlock mcp tools|call|login|pin` on the CLI's subcommand table."""
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
    pin = sub.add_parser("pin", parents=[common], help="pin tool definitions in the lock file (tools.lock.toml)")
    pin.add_argument("server", metavar="SERVER", nargs="?", help="only this server's tools (default: every server)")
    pin.add_argument("--update", nargs=2, metavar=("SERVER", "TOOL"), help="accept one tool's reviewed change")
    pin.set_defaults(command=_mcp_command("pin"))


def _add_policy_commands(commands: Any) -> None:
    """Register `airlock policy check`; its module (Cedar, the MCP SDK) loads only when it runs."""
    group = commands.add_parser("policy", help="what the worker's policies on arguments (Cedar) decide")
    sub = group.add_subparsers(title="policy commands", metavar="COMMAND", required=True)
    check = sub.add_parser("check", help="the decision for one call, and the rule that made it")
    check.add_argument("agent", metavar="AGENT")
    check.add_argument("tool", metavar="TOOL", help="server.tool, e.g. tickets.close_ticket")
    check.add_argument("arguments", metavar="JSON", help="the call's arguments, a JSON object")
    check.add_argument("--requester", default=None, help="who requested the run (policies see context.requester)")
    check.add_argument("-o", "--output", choices=("table", "json"), default=None, help="table (default) or json")

    async def run_check(args: argparse.Namespace) -> int:
        from console import policy

        result: int = await policy.cmd_check(args)
        return result

    check.set_defaults(command=run_check)


def _mcp_command(name: str) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """`airlock mcp NAME`, loading the MCP SDK (a second of start-up) only when it runs."""

    async def command(args: argparse.Namespace) -> int:
        from console import mcp

        result: int = await getattr(mcp, f"cmd_{name}")(args)
        return result

    return command
