"""Adapter for the MCP conformance suite's client mode, over Airlock's own MCP client.

The suite runs `python -m tests.support.conformance_client URL` with `MCP_CONFORMANCE_SCENARIO`
(and, for some, `MCP_CONFORMANCE_CONTEXT`) set. The adapter writes the `servers.toml` an operator
would write for that server and drives the registry, the OAuth providers, the loopback login and
the elicitation callback that `airlock mcp call` / `airlock mcp login` use. The "browser" of an
authorization-code scenario follows the authorization URL itself (the suite's authorization
server approves at once) and so lands on Airlock's loopback redirect listener.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from console.mcp import answer_from
from mcp_servers.client.auth import preregister, redirect_uri
from mcp_servers.client.login import LoopbackLogin
from mcp_servers.client.registry import McpPool, load_servers

CIMD_URL = "https://conformance-test.local/client-metadata.json"
# What each plain scenario calls; auth scenarios call the first tool listed.
CALLS = {
    "tools_call": ("add_numbers", {"a": 5, "b": 3}),
    "sse-retry": ("test_reconnection", {}),
    "elicitation-sep1034-client-defaults": ("test_client_elicitation_defaults", {}),
}


async def browser(url: str) -> None:
    """Follow the authorization URL to its redirect, as a person's browser would."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(f"authorization answered {response.status_code} without a redirect")
        await client.get(location)


def servers_toml(url: str, scenario: str, context: dict[str, Any], environ: dict[str, str]) -> str:
    """The `servers.toml` an operator would write for this scenario's server."""
    lines = ["[servers.conformance]", 'transport = "http"', f"url = {json.dumps(url)}", 'timeout = "20s"']
    if scenario.startswith("auth/"):
        lines.append("[servers.conformance.oauth]")
        if context.get("client_id"):
            lines.append(f"client_id = {json.dumps(context['client_id'])}")
        if scenario == "auth/client-credentials-jwt":
            environ["CONFORMANCE_PRIVATE_KEY"] = context["private_key_pem"]
            lines += [
                'private_key = "${CONFORMANCE_PRIVATE_KEY}"',
                f"signing_algorithm = {json.dumps(context.get('signing_algorithm', 'ES256'))}",
            ]
        elif context.get("client_secret"):
            environ["CONFORMANCE_CLIENT_SECRET"] = context["client_secret"]
            lines.append('client_secret = "${CONFORMANCE_CLIENT_SECRET}"')
        if scenario != "auth/client-credentials-basic" and scenario != "auth/client-credentials-jwt":
            lines += ['flow = "authorization_code"', f"client_metadata_url = {json.dumps(CIMD_URL)}"]
    return "\n".join(lines) + "\n"


async def run(url: str, scenario: str, context: dict[str, Any], root: Path) -> None:
    """One scenario: connect, list tools, call the scenario's tool."""
    environ = {**os.environ, "AIRLOCK_OAUTH_DIR": str(root / "oauth")}
    path = root / "servers.toml"
    path.write_text(servers_toml(url, scenario, context, environ))
    servers = load_servers(path, environ)
    async with LoopbackLogin(browser, wait_seconds=20) as listener:
        pool = McpPool(servers, environ, login=listener, elicitation=answer_from(None, defaults=True))
        try:
            await preregister(
                "conformance", servers["conformance"], environ, pool.token_dir, redirect_uri(listener.port)
            )
            connection = pool.connection("conformance")
            tools = await connection.list_tools()
            tool, arguments = CALLS.get(scenario, (tools[0].name if tools else "", {}))
            if tool:
                result = await connection.call_tool(tool, arguments, None)
                sys.stderr.write(f"{tool}: is_error={result.is_error}\n")
        finally:
            await pool.close()


def main() -> int:
    """Entry point: the server URL is the last argument."""
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory(prefix="airlock-conformance-") as root:
        asyncio.run(run(sys.argv[-1], scenario, context, Path(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
