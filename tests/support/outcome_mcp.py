"""A stdio MCP server whose writes are applied but answered in ways that tempt a client to say "not applied".

    OUTCOME_LOG=writes.jsonl python -m tests.support.outcome_mcp

Every tool appends one JSON line (`tool`, `arguments`, `key` = the idempotency key) to
`$OUTCOME_LOG` when it applies the write, before it answers, so a test knows what was applied.
- `pay(amount)`: declares an `outputSchema` (`{"receipt": string}`, required) and answers with
  structured content that misses it (`{"receipt_id": 7}`);
- `archive(name)`: answers with text nested 20,000 levels deep (`[[[…]]]`) beside structured
  content, which once made the result renderer recurse past Python's limit;
- `sync(name)`: annotated `idempotentHint: true`; applies, then never answers (the client's
  request timeout ends every attempt), so a retry policy sends it again and again.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations

RECEIPT_SCHEMA = {
    "type": "object",
    "properties": {"receipt": {"type": "string"}},
    "required": ["receipt"],
}
DEPTH = 20_000


async def declare_output_schema(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Advertise `pay`'s output schema (the server itself does not check what `pay` returns)."""
    result = await call_next(ctx)
    if ctx.method != "tools/list":
        return result
    listing = result.model_dump(by_alias=True, exclude_none=True) if not isinstance(result, dict) else result
    for tool in listing.get("tools", []):
        if tool.get("name") == "pay":
            tool["outputSchema"] = RECEIPT_SCHEMA
    return listing


server: MCPServer = MCPServer("outcome", middleware=[declare_output_schema])


def _applied(tool: str, arguments: dict[str, Any], ctx_meta: Any) -> None:
    key = dict(ctx_meta).get("airlock/idempotency_key") if ctx_meta is not None else None
    path = os.environ.get("OUTCOME_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"tool": tool, "arguments": arguments, "key": key}) + "\n")


@server.tool(structured_output=False)
def pay(amount: int, ctx: Context) -> CallToolResult:
    """Pay an amount; answers with a receipt whose shape is not the one promised."""
    _applied("pay", {"amount": amount}, ctx.request_context.meta)
    return CallToolResult(
        content=[TextContent(type="text", text=f"paid {amount}")],
        structured_content={"receipt_id": 7},
    )


@server.tool(structured_output=False)
def archive(name: str, ctx: Context) -> CallToolResult:
    """Archive a document; answers with deeply nested text and structured content."""
    _applied("archive", {"name": name}, ctx.request_context.meta)
    return CallToolResult(
        content=[TextContent(type="text", text="[" * DEPTH + "]" * DEPTH)],
        structured_content={"archived": name},
    )


@server.tool(annotations=ToolAnnotations(idempotent_hint=True))
async def sync(name: str, ctx: Context) -> str:
    """Sync a document; applies it, then never answers."""
    _applied("sync", {"name": name}, ctx.request_context.meta)
    await anyio.sleep_forever()
    return "unreachable"


if __name__ == "__main__":
    server.run("stdio")
