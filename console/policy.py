"""`airlock policy check AGENT TOOL JSON`: what the worker's policies decide for one call, and which rule.

A dry run on the worker host: it reads the same agent, server and Cedar policy files as the worker
(activities/rules.py), lists the tool from its server as the worker does (its annotations count),
and prints the decision (`auto`, `approve` with how many approvals and from whom, or `deny`) and
the rule that decided: a Cedar policy, or the agent's `[tools]` rules when no policy matches.
Nothing is called and no run is started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from activities import output_schema, policy
from activities.authority import annotation_hints
from activities.catalog import Catalog
from console.errors import CliError
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool, load_servers
from runtime import logs
from runtime.settings import Settings
from workflows.arguments import schema_errors
from workflows.visible import visible


class PolicyCheckError(CliError):
    """`airlock policy check` could not judge the call (the message says why)."""


async def cmd_check(args: argparse.Namespace) -> int:
    """`airlock policy check AGENT TOOL JSON`: print the decision and the rule; 1 when it cannot judge."""
    # The command's own process: stdout is the answer; the registry's and servers' lines go to stderr.
    logs.configure("WARNING")
    os.environ.setdefault("TICKETS_LOG_LEVEL", "WARNING")
    try:
        found = await judge(Settings(), args.agent, args.tool, args.arguments, requester=args.requester)
    except PolicyCheckError as err:
        sys.stderr.write(visible(f"airlock: {err}") + "\n")
        return 1
    if getattr(args, "output", None) == "json":
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return 0
    # Each line shown visibly on its own: a rule's reason or an argument cannot rewrite the terminal.
    sys.stdout.write("".join(visible(line) + "\n" for line in render(found).split("\n")))
    return 0


def render(found: dict[str, Any]) -> str:
    """The decision as a person reads it, one line each: decision, approvals, rule, reason."""
    lines = [f"decision:  {found['decision']}"]
    if found["decision"] == "approve":
        who = ", ".join(found["approvers"]) or "anyone with a valid identity"
        lines.append(f"approvals: {found['approvals']} from {who}")
    lines.append(f"rule:      {found['rule']}")
    if found.get("reason"):
        lines.append(f"reason:    {found['reason']}")
    for problem in found.get("invalid_arguments", []):
        lines.append(f"note:      the model would be told its arguments are invalid: {problem}")
    return "\n".join(lines)


async def judge(
    settings: Settings, agent: str, tool_name: str, arguments_json: str, *, requester: str | None = None
) -> dict[str, Any]:
    """The decision the worker would make for this call now: decision, approvals, approvers, rule, reason."""
    server, dot, tool = tool_name.partition(".")
    if not dot or not server or not tool:
        raise PolicyCheckError(f"TOOL must be server.tool, not {tool_name!r}")
    try:
        arguments = json.loads(arguments_json)
    except json.JSONDecodeError as err:
        raise PolicyCheckError(f"JSON is not valid JSON: {err}") from None
    if not isinstance(arguments, dict):
        raise PolicyCheckError("JSON must be an object of the call's arguments")
    servers = load_servers(settings.mcp_servers_file, os.environ)
    catalog = Catalog.load(settings.agents_dir, set(servers), settings.resolved_policy_dir())
    spec = catalog.get(agent)
    if spec is None:
        raise PolicyCheckError(f"unknown agent {agent!r} in {settings.agents_dir}")
    if server not in spec.mcp_servers:
        raise PolicyCheckError(f"agent {agent!r} does not use server {server!r}")
    pool = McpPool({server: servers[server]}, output_checker=output_schema.CHECKER)
    try:
        listed = {found.name: found for found in await pool.connection(server).list_tools()}
    except ServerFailedError as err:
        raise PolicyCheckError(f"server {server!r} could not be listed: {err}") from None
    finally:
        await pool.close()
    if tool not in listed:
        raise PolicyCheckError(f"server {server!r} offers no tool {tool!r}")
    config = servers[server]
    hints = listed[tool].annotations
    read_only = hints.read_only_hint if hints is not None else None
    decided = policy.resolve(tool, server, spec.tools, trusted=config.trusted, read_only_hint=read_only)
    approval = spec.approval_config()
    found: dict[str, Any] = {
        "agent": agent,
        "tool": f"{server}.{tool}",
        "decision": decided,
        "approvals": approval.required,
        "approvers": list(approval.approvers),
        "rule": f"[tools] of {catalog.files[agent].name}" + ("" if spec.tools else " (defaults)"),
        "reason": None,
    }
    ruling = None
    if decided != "deny":
        ruling = catalog.rules.judge(
            agent=agent,
            server=server,
            tool=tool,
            arguments=arguments,
            requester=requester,
            trusted=config.trusted,
            annotations=annotation_hints(hints),
        )
    if ruling is not None:
        found.update(decision=ruling.policy, rule=ruling.rule, reason=ruling.reason)
        if ruling.approvals:
            found["approvals"] = ruling.approvals
        if ruling.approvers is not None:
            found["approvers"] = ruling.approvers
    problems = schema_errors(listed[tool].input_schema, arguments)
    if problems:
        found["invalid_arguments"] = problems
    return found
