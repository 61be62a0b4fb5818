"""`airlock mcp ...`: connect to a registered MCP server the way the worker does, for operators.

`tools` lists a server's tools with annotations and the policy each gets; `call` calls one
tool (it bypasses no gate: it is for checking a server, on the worker host); `login` is a
person's one-time OAuth login for a server that needs one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mcp.client.context import ClientRequestContext
from mcp.client.session import ElicitationFnT
from mcp.shared.tool_name_validation import TOOL_NAME_REGEX
from mcp_types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult, ErrorData, Tool

from activities import output_schema, policy
from activities.catalog import Catalog
from console.visible import visible, visible_lines
from mcp_servers.client.auth import preregister, redirect_uri
from mcp_servers.client.login import Browser, LoopbackLogin
from mcp_servers.client.registry import McpPool, ServerConfig, ServerUnavailable, load_servers
from mcp_servers.client.results import render
from mcp_servers.client.tasks import HIDDEN as TASKS_HIDDEN
from mcp_servers.client.tasks import requires_tasks
from runtime import logs
from runtime.settings import Settings

Elicit = ElicitationFnT


class McpCommandError(Exception):
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
    except (McpCommandError, ServerUnavailable) as err:
        return _report(err)
    if args.output == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    width = max((len(row["name"]) for row in rows), default=4)
    policy_width = max((len(row["policy"]) for row in rows), default=6)
    sys.stdout.write(f"{'TOOL':<{width}}  {'POLICY':<{policy_width}}  HINTS\n")
    for row in rows:
        hints = ", ".join(f"{key}={value}" for key, value in row["annotations"].items() if key.endswith("Hint"))
        sys.stdout.write(visible(f"{row['name']:<{width}}  {row['policy']:<{policy_width}}  {hints}") + "\n")
    return 0


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
    except (McpCommandError, ServerUnavailable) as err:
        return _report(err)
    # The result is the server's: shown as the model would read it, hidden characters escaped.
    sys.stdout.write((json.dumps(raw, indent=2) if args.output == "json" else visible_lines(text)) + "\n")
    return 1 if raw.get("isError") else 0


async def cmd_login(args: argparse.Namespace) -> int:
    """`airlock mcp login SERVER`."""
    try:
        await login(args.server, _servers(Settings(), args.server))
    except (McpCommandError, ServerUnavailable) as err:
        return _report(err)
    sys.stderr.write(f"logged in to {args.server}; tokens are kept on this host (mode 0600)\n")
    return 0
