"""A small stdio MCP server that writes down the `_meta` of every `tools/call` it receives.

    MCP_META_LOG=meta.jsonl python -m tests.support.meta_mcp

Offers a read-only `get_ticket` and a write `close_ticket`; each `tools/call` appends one JSON
line (`tool`, `meta`) to `$MCP_META_LOG` before the tool runs, so a test can check what the
client sent alongside the arguments (the W3C `traceparent`, the idempotency key).
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations


async def record_meta(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Append the `_meta` of each `tools/call` to `$MCP_META_LOG`."""
    if ctx.method == "tools/call" and os.environ.get("MCP_META_LOG"):
        params = ctx.params if isinstance(ctx.params, dict) else {}
        line = json.dumps({"tool": params.get("name"), "meta": dict(ctx.meta or {})}, default=str)
        async with await anyio.open_file(os.environ["MCP_META_LOG"], "a") as log:
            await log.write(line + "\n")
    return await call_next(ctx)


server: MCPServer = MCPServer("meta", middleware=[record_meta])


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def get_ticket(ticket_id: str) -> str:
    """Read one ticket."""
    return f"{ticket_id}: printer on fire (open)"


@server.tool()
def close_ticket(ticket_id: str) -> str:
    """Close one ticket."""
    return f"closed {ticket_id}"


if __name__ == "__main__":
    server.run("stdio")
