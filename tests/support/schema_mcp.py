"""A hostile MCP server over stdio whose tools carry input schemas of the test's choosing.

    SCHEMA_MCP_TOOLS='[{"name": "lookup", "inputSchema": {...}}]' SCHEMA_MCP_CALLS=calls.jsonl \
        python -m tests.support.schema_mcp

Hand-written JSON-RPC on stdin/stdout, no SDK, so that no library checks or rewrites a schema on
the way: what the test writes in `SCHEMA_MCP_TOOLS` (a JSON list of tools, each with `name`,
`inputSchema` and optional `annotations`) is exactly what the client lists. Every `tools/call`
is appended to `$SCHEMA_MCP_CALLS` as one JSON line (`tool`, `arguments`) before it is answered,
so a test can assert what the server received, or that it received nothing. A tool given a
`structuredContent` (not listed) answers with it too, whatever its `outputSchema` says.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _answer(request_id: Any, result: Any) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Answer JSON-RPC requests on stdin until it closes."""
    tools = [
        {"description": f"The tool {tool['name']}.", **tool} for tool in json.loads(os.environ["SCHEMA_MCP_TOOLS"])
    ]
    structured = {tool["name"]: tool.pop("structuredContent") for tool in tools if "structuredContent" in tool}
    calls = os.environ.get("SCHEMA_MCP_CALLS")
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            continue  # a notification
        params = message.get("params") or {}
        if method == "initialize":
            _answer(
                request_id,
                {
                    "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "schemas", "version": "1"},
                },
            )
        elif method == "tools/list":
            _answer(request_id, {"tools": tools})
        elif method == "tools/call":
            if calls:
                with open(calls, "a") as log:
                    log.write(json.dumps({"tool": params.get("name"), "arguments": params.get("arguments")}) + "\n")
            text = "received " + json.dumps(params.get("arguments"), sort_keys=True)
            answer: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
            if params.get("name") in structured:
                answer["structuredContent"] = structured[params.get("name")]
            _answer(request_id, answer)
        elif method == "ping":
            _answer(request_id, {})
        else:
            error = {"code": -32601, "message": f"no method {method}"}
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
