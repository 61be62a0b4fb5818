"""`airlock mcp ...`: connect to a registered MCP server the way the worker does, for operators.

`tools` lists a server's tools with annotations, the policy each gets and, with pins on, whether
each is pinned, changed or new (with the diff); `pin` writes their definitions' digests to the
lock file (activities/pins.py), `pin --update SERVER TOOL` accepts one reviewed change; `call` calls one
tool (it bypasses no gate: it is for checking a server, on the worker host); `login` is a
person's one-time OAuth login for a server that needs one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp.client.context import ClientRequestContext
from mcp.client.session import ElicitationFnT
from mcp.shared.tool_name_validation import TOOL_NAME_REGEX
from mcp_types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult, ErrorData, Tool

from activities import output_schema, pins, policy
from activities.catalog import Catalog
from console.errors import ConsoleError
from mcp_servers.client.auth import preregister, redirect_uri
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.login import Browser, LoopbackLogin
from mcp_servers.client.registry import McpPool, ServerConfig, load_servers
from mcp_servers.client.results import render
from mcp_servers.client.tasks import HIDDEN as TASKS_HIDDEN
from mcp_servers.client.tasks import requires_tasks
from mcp_servers.tomlfiles import ConfigError
from runtime import logs
from runtime.settings import Settings
from workflows.visible import visible, visible_lines

Elicit = ElicitationFnT


class McpCommandError(ConsoleError):
    """An `airlock mcp` command could not do what it was asked (the message says why)."""


def _servers(settings: Settings, name: str) -> dict[str, ServerConfig]:
    # stdout is the command's answer: the registry's log lines go to stderr, at warnings only,
    # and so do the bundled tickets server's (its child inherits stderr).
    logs.configure("WARNING")
    os.environ.setdefault("TICKETS_LOG_LEVEL", "WARNING")
    servers = load_servers(settings.mcp_servers_file, os.environ)
    if name not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise McpCommandError(f"unknown server {name!r} in {settings.mcp_servers_file} (known: {known})")
    return servers


def _report(err: Exception) -> int:
    sys.stderr.write(visible(f"airlock: {err}") + "\n")
    return 1


async def print_url(url: str) -> None:
    """A person's browser step: show the URL on the terminal."""
    sys.stderr.write(f"Open this URL in a browser to log in:\n\n  {url}\n\n")
    sys.stderr.flush()


async def login(
    name: str,
    servers: dict[str, ServerConfig],
    *,
    browser: Browser = print_url,
    pool_environ: dict[str, str] | None = None,
) -> None:
    """Log in to server `name` once: the tokens land in the worker's token directory (mode 0600)."""
    config = servers[name]
    if config.oauth is None or config.oauth.kind != "authorization_code":
        raise McpCommandError(f"server {name!r} has no [servers.{name}.oauth] table for a person's login")
    environ = dict(os.environ if pool_environ is None else pool_environ)
    async with LoopbackLogin(browser, port=config.oauth.redirect_port) as listener:
        pool = McpPool({name: config}, environ, login=listener, output_checker=output_schema.CHECKER)
        await preregister(name, config, environ, pool.token_dir, redirect_uri(listener.port))
        try:
            await pool.connection(name).list_tools()
        finally:
            await pool.close()


def schema_defaults(params: ElicitRequestParams) -> dict[str, Any]:
    """The `default` of every field a form-mode request declares (SEP-1034)."""
    if not isinstance(params, ElicitRequestFormParams):
        return {}
    properties = params.requested_schema.get("properties", {})
    return {key: spec["default"] for key, spec in properties.items() if isinstance(spec, dict) and "default" in spec}


def answer_from(text: str | None, *, defaults: bool = False) -> Elicit:
    """An elicitation callback: `--answer JSON`, the schema's defaults, a terminal prompt, or decline."""

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        if text is None and defaults:
            return ElicitResult(action="accept", content=schema_defaults(params))
        if text is not None:
            value = json.loads(text)
            if isinstance(value, dict) and value.get("action") in ("accept", "decline", "cancel"):
                return ElicitResult.model_validate(value)
            return ElicitResult(action="accept", content=value)
        if not sys.stdin.isatty():
            return ElicitResult(action="decline")
        sys.stderr.write(visible(f"The server asks: {params.message}") + "\n")
        if isinstance(params, ElicitRequestFormParams):
            schema = json.dumps(params.requested_schema)
            sys.stderr.write(f"Schema: {visible(schema)}\nAnswer (JSON object, empty to decline): ")
        sys.stderr.flush()
        line = sys.stdin.readline().strip()
        return ElicitResult(action="accept", content=json.loads(line)) if line else ElicitResult(action="decline")

    return elicit


async def call(
    name: str,
    tool: str,
    arguments: dict[str, Any],
    servers: dict[str, ServerConfig],
    *,
    answer: str | None = None,
    browser: Browser | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Call one tool like the worker does; the raw result and the text the model would see."""
    env = dict(os.environ if environ is None else environ)
    oauth = servers[name].oauth
    interactive = browser is not None and oauth is not None and oauth.kind == "authorization_code"
    listener = LoopbackLogin(browser, port=oauth.redirect_port) if interactive and browser and oauth else None
    if listener is not None:
        await listener.__aenter__()
    pool = McpPool(servers, env, login=listener, elicitation=answer_from(answer), output_checker=output_schema.CHECKER)
    try:
        connection = pool.connection(name)
        if listener is not None:
            await preregister(name, servers[name], env, pool.token_dir, redirect_uri(listener.port))
        await connection.list_tools()
        result = await connection.call_tool(tool, arguments, None)
    finally:
        await pool.close()
        if listener is not None:
            await listener.__aexit__()
    return result.model_dump(mode="json", by_alias=True, exclude_none=True), render(result).text


def _policy_rows(name: str, config: ServerConfig, tools: list[Tool], agent: str | None) -> list[dict[str, Any]]:
    rules = {}
    if agent is not None:
        settings = Settings()
        spec = Catalog.load(settings.agents_dir, set(load_servers(settings.mcp_servers_file, os.environ))).get(agent)
        if spec is None:
            raise McpCommandError(f"unknown agent {agent!r}")
        if name not in spec.mcp_servers:
            raise McpCommandError(f"agent {agent!r} does not use server {name!r}")
        rules = spec.tools
    rows = []
    for tool in tools:
        hints = tool.annotations
        read_only = hints.read_only_hint if hints is not None else None
        valid = bool(TOOL_NAME_REGEX.fullmatch(tool.name))
        if not valid:
            decided = "hidden (invalid name)"
        elif requires_tasks(tool):
            decided = TASKS_HIDDEN
        else:
            decided = policy.resolve(tool.name, name, rules, trusted=config.trusted, read_only_hint=read_only)
        rows.append(
            {
                "name": tool.name if valid else tool.name[:80],
                "policy": decided,
                "annotations": hints.model_dump(mode="json", by_alias=True, exclude_none=True) if hints else {},
                "output_schema": tool.output_schema is not None,
                "description": (tool.description or "").split("\n")[0][:100],
            }
        )
    return rows


async def cmd_tools(args: argparse.Namespace) -> int:
    """`airlock mcp tools SERVER [--agent A]`."""
    try:
        servers = _servers(Settings(), args.server)
        pool = McpPool(servers, output_checker=output_schema.CHECKER)
        try:
            tools = await pool.connection(args.server).list_tools()
        finally:
            await pool.close()
        rows = _policy_rows(args.server, servers[args.server], tools, args.agent)
        pinned = _pin_rows(args.server, servers[args.server], tools, rows, Settings().resolved_tools_lock_file())
    except (McpCommandError, ServerFailedError, ConfigError) as err:
        return _report(err)
    if args.output == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    width = max((len(row["name"]) for row in rows), default=4)
    policy_width = max((len(row["policy"]) for row in rows), default=6)
    hints = [
        ", ".join(f"{key}={value}" for key, value in row["annotations"].items() if key.endswith("Hint")) for row in rows
    ]
    # The PIN column comes last, so the table reads as before when pins are off.
    hints_width = max(map(len, ["HINTS", *hints])) if pinned else 0
    pin_head = "  PIN" if pinned else ""
    sys.stdout.write(f"{'TOOL':<{width}}  {'POLICY':<{policy_width}}  {'HINTS':<{hints_width}}{pin_head}\n")
    for row, hint in zip(rows, hints, strict=True):
        pin = f"  {row.get('pin', '')}" if pinned else ""
        line = f"{row['name']:<{width}}  {row['policy']:<{policy_width}}  {hint:<{hints_width}}{pin}"
        sys.stdout.write(visible(line) + "\n")
    for row in rows:
        if row.get("diff"):
            # The server's text, as a reviewer must read it: every hidden character escaped.
            sys.stdout.write(f"\n{row['name']}: {row['pin']} since pinned\n{visible_lines(row['diff'])}\n")
    return 0


def _pin_rows(name: str, config: ServerConfig, tools: list[Tool], rows: list[dict[str, Any]], lock_file: Path) -> bool:
    """Add each row's pin status (and diff) when pins are on for the server; whether they are."""
    found = pins.load(lock_file)
    mode = pins.mode(name, config, found)
    if mode == "off":
        return False
    by_name = {tool.name: tool for tool in tools}
    for row in rows:
        tool = by_name.get(row["name"])
        if tool is None:
            continue
        verdict = pins.compare(found.get(name, {}).get(tool.name), tool)
        row["pin"] = verdict.status
        if verdict.status != "pinned":
            row["diff"] = verdict.diff
            if row["policy"] in ("auto", "approve"):
                row["policy"] = f"{'hidden' if mode == 'hide' else 'approve'} ({verdict.status} since pinned)"
    return True


async def pin(
    servers: dict[str, ServerConfig], lock_file: Path, *, only: str | None = None, update: str | None = None
) -> list[tuple[str, str, str]]:
    """Pin tools in `lock_file`: every unpinned tool of `only` (or of every server), or the one `update` names.

    A pin that no longer matches is kept unless `update` names its tool: accepting a change is
    a reviewed, explicit step. Returns (server.tool, what happened, diff) for each tool looked at.
    """
    found = pins.load(lock_file)
    done: list[tuple[str, str, str]] = []
    names = [only] if only is not None else sorted(servers)
    pool = McpPool({n: servers[n] for n in names}, output_checker=output_schema.CHECKER)
    try:
        for server in names:
            listed = await pool.connection(server).list_tools()
            if update is not None and update not in {tool.name for tool in listed}:
                raise McpCommandError(f"server {server!r} offers no tool {update!r}")
            kept = found.setdefault(server, {})
            for tool in listed:
                if (update is not None and tool.name != update) or not TOOL_NAME_REGEX.fullmatch(tool.name):
                    continue
                verdict = pins.compare(kept.get(tool.name), tool)
                if verdict.status == "pinned":
                    done.append((f"{server}.{tool.name}", "unchanged", ""))
                elif verdict.status == "changed" and update is None:
                    done.append((f"{server}.{tool.name}", "changed, kept (review, then --update)", verdict.diff))
                else:
                    kept[tool.name] = pins.Pin.of(tool)
                    done.append((f"{server}.{tool.name}", "updated" if verdict.status == "changed" else "pinned", ""))
    finally:
        await pool.close()
    pins.write(lock_file, {server: tools for server, tools in found.items() if tools})
    return done


async def cmd_pin(args: argparse.Namespace) -> int:
    """`airlock mcp pin [SERVER]` or `airlock mcp pin --update SERVER TOOL`."""
    settings = Settings()
    lock_file = settings.resolved_tools_lock_file()
    try:
        if args.update is not None and args.server is not None:
            raise McpCommandError("give SERVER either alone or with --update SERVER TOOL, not both")
        server, tool = args.update if args.update is not None else (args.server, None)
        servers = _servers(settings, server) if server is not None else _all_servers(settings)
        done = await pin(servers, lock_file, only=server, update=tool)
    except (McpCommandError, ServerFailedError, ConfigError) as err:
        return _report(err)
    for key, what, change in done:
        sys.stdout.write(visible(f"{key}: {what}") + "\n")
        if change:
            sys.stdout.write(visible_lines(change) + "\n")
    sys.stdout.write(f"wrote {lock_file}\n")
    return 0


def _all_servers(settings: Settings) -> dict[str, ServerConfig]:
    logs.configure("WARNING")
    os.environ.setdefault("TICKETS_LOG_LEVEL", "WARNING")
    return load_servers(settings.mcp_servers_file, os.environ)


async def cmd_call(args: argparse.Namespace) -> int:
    """`airlock mcp call SERVER TOOL JSON [--answer JSON]`."""
    try:
        arguments = json.loads(args.arguments)
        if not isinstance(arguments, dict):
            raise McpCommandError("the arguments must be a JSON object")
        servers = _servers(Settings(), args.server)
        raw, text = await call(
            args.server,
            args.tool,
            arguments,
            servers,
            answer=args.answer,
            browser=print_url if sys.stdin.isatty() else None,
        )
    except json.JSONDecodeError as err:
        return _report(McpCommandError(f"not JSON: {err.msg}"))
    except (McpCommandError, ServerFailedError) as err:
        return _report(err)
    # The result is the server's: shown as the model would read it, hidden characters escaped.
    sys.stdout.write((json.dumps(raw, indent=2) if args.output == "json" else visible_lines(text)) + "\n")
    return 1 if raw.get("isError") else 0


async def cmd_login(args: argparse.Namespace) -> int:
    """`airlock mcp login SERVER`."""
    try:
        await login(args.server, _servers(Settings(), args.server))
    except (McpCommandError, ServerFailedError) as err:
        return _report(err)
    sys.stderr.write(f"logged in to {args.server}; tokens are kept on this host (mode 0600)\n")
    return 0
