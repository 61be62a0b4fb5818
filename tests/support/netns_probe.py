"""Inside a network namespace with only loopback: the tickets server bound to 0.0.0.0, probed.

`python -m tests.support.netns_probe DB_PATH` (run under `unshare -rn`) starts the server on every
interface of the namespace — which, having only loopback, exposes nothing — sends requests with
various Host and Origin headers and tokens, stops the server, and prints what each got as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from activities.airlock_activities import result_text
from mcp_servers.client.registry import McpPool, load_servers
from runtime import logs
from tests.support.tickets_http import AUTH_HEADER, TICKETS_TOKEN, tickets_http_server

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


async def probe(db: Path) -> dict[str, object]:
    """Start the server on 0.0.0.0, probe it, stop it; what each probe saw."""
    report: dict[str, object] = {}
    async with tickets_http_server(db, host="0.0.0.0", extra=("--allowed-host", "tickets.internal")) as server:
        port = urlsplit(server.url).port
        url = f"http://127.0.0.1:{port}/mcp"
        auth = {"Authorization": f"Bearer {TICKETS_TOKEN}"}
        cases = {
            "loopback_host": {**auth, "Host": f"127.0.0.1:{port}"},
            "listed_host": {**auth, "Host": f"tickets.internal:{port}"},
            "rebound_name": {**auth, "Host": f"attacker.example:{port}"},
            "other_address": {**auth, "Host": f"10.1.2.3:{port}"},
            "cross_origin": {**auth, "Host": f"127.0.0.1:{port}", "Origin": "http://attacker.example"},
            "no_token": {"Host": f"127.0.0.1:{port}"},
        }
        async with httpx.AsyncClient(timeout=10) as http:
            for name, headers in cases.items():
                response = await http.post(url, json=LIST_TOOLS, headers={**MCP_HEADERS, **headers})
                report[name] = [response.status_code, response.text.strip()[:120]]
        # And the way the worker connects: through Airlock's registry, token from ${TICKETS_TOKEN}.
        registry = db.parent / "servers.toml"
        registry.write_text(
            textwrap.dedent(f"""
        [servers.tickets]
        transport = "http"
        url = "{url}"
        {AUTH_HEADER}
        trust = "trusted"
        """)
        )
        environ = {"TICKETS_TOKEN": TICKETS_TOKEN}
        pool = McpPool(load_servers(registry, environ), environ)
        try:
            result = await pool.connection("tickets").call_tool("get_ticket", {"ticket_id": "T-1"}, None)
            report["registry"] = [result.is_error, (result.structured_content or {}).get("title", result_text(result))]
        finally:
            await pool.close()
        report["bound"] = server.url
    return report


if __name__ == "__main__":
    logs.configure("INFO", "json")  # stderr, as the worker logs; stdout carries only the report
    sys.stdout.write(json.dumps(asyncio.run(probe(Path(sys.argv[1])))) + "\n")
