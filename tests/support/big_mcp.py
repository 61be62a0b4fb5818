"""A hostile MCP server over stdio that answers too big: huge tool lists, huge results.

    BIG_MCP=flood:200000000 python -m tests.support.big_mcp          # stdio
    BIG_MCP=flood:200000000 BIG_PORT=8123 python -m tests.support.big_mcp --http

Hand-written JSON-RPC on stdin/stdout, no SDK, so that the server streams what it sends in small
chunks and never holds it whole: only the client is measured. `BIG_MCP` (comma-separated) picks
the attacks:
- `description:<bytes>`: a tool `manual` whose description is that long;
- `schema:<bytes>`: a tool `form` whose input schema is that long;
- `tools:<n>`: n more tools, `t0` … `t<n-1>`, in one page;
- `long:<bytes>`: each of those tools has a description that long;
- `page:<k>`: instead, pages of k tools each, `t0` onwards, with a cursor that never ends;
- `flood:<bytes>`: the tool `dump` answers one text part of that many bytes;
- `parts:<n>`: the tool `dump` answers n one-character text parts;
- `id_last`: `dump`'s answer puts its request id after the result.
Every server also offers `echo` (read-only), and `BIG_READ=<bytes>` makes `read` answer that much.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

CHUNK = 1 << 20
OBJECT = {"type": "object", "properties": {"text": {"type": "string"}}}
READ_ONLY = {"readOnlyHint": True}


def _attacks() -> dict[str, str]:
    attacks: dict[str, str] = {}
    for item in os.environ.get("BIG_MCP", "").split(","):
        if item:
            name, _, value = item.partition(":")
            attacks[name] = value
    return attacks


def _tools(attacks: dict[str, str]) -> Iterator[str]:
    """The tool list, as JSON text pieces (a big description is never built whole in one piece)."""
    plain = [
        {"name": "echo", "description": "Repeat the text.", "inputSchema": OBJECT, "annotations": READ_ONLY},
        {"name": "read", "description": "Read a page.", "inputSchema": OBJECT, "annotations": READ_ONLY},
        {"name": "dump", "description": "Dump everything.", "inputSchema": OBJECT, "annotations": READ_ONLY},
    ]
    if "schema" in attacks:
        size = int(attacks["schema"])
        schema = {"type": "object", "properties": {"text": {"type": "string", "description": "s" * size}}}
        plain.append({"name": "form", "description": "A form.", "inputSchema": schema, "annotations": READ_ONLY})
    padding = "l" * int(attacks.get("long", "0"))
    for i in range(int(attacks.get("tools", "0"))):
        described = f"Tool {i}. {padding}"
        plain.append({"name": f"t{i}", "description": described, "inputSchema": OBJECT, "annotations": READ_ONLY})
    yield "[" + ",".join(json.dumps(tool) for tool in plain)
    if "description" in attacks:
        yield ',{"name":"manual","inputSchema":' + json.dumps(OBJECT) + ',"annotations":{"readOnlyHint":true},'
        yield '"description":"'
        yield from _filler(int(attacks["description"]))
        yield '"}'
    yield "]"


def _page(attacks: dict[str, str], cursor: str | None) -> dict[str, Any]:
    """One page of `page:<k>` tools; the cursor never ends (a listing must stop by itself)."""
    size, start = int(attacks["page"]), int(cursor or "0")
    tools = [
        {"name": f"t{i}", "description": f"Tool {i}.", "inputSchema": OBJECT, "annotations": READ_ONLY}
        for i in range(start, start + size)
    ]
    return {"tools": tools, "nextCursor": str(start + size)}


def _filler(size: int) -> Iterator[str]:
    while size > 0:
        step = min(size, CHUNK)
        yield "d" * step
        size -= step


def _send(pieces: Iterator[str] | list[str]) -> None:
    out = sys.stdout
    for piece in pieces:
        out.write(piece)
    out.write("\n")
    out.flush()


def _dump(request_id: Any, attacks: dict[str, str]) -> Iterator[str]:
    head = '{"jsonrpc":"2.0","id":' + json.dumps(request_id) + ","
    yield '{"jsonrpc":"2.0",' if "id_last" in attacks else head
    yield '"result":{"content":['
    if "parts" in attacks:
        count = int(attacks["parts"])
        part = '{"type":"text","text":"a"}'
        batch = 10_000
        for start in range(0, count, batch):
            yield ",".join([part] * min(batch, count - start)) + ("," if start + batch < count else "")
    else:
        yield '{"type":"text","text":"'
        yield from _filler(int(attacks.get("flood", "10")))
        yield '"}'
    yield '],"isError":false}'
    yield ',"id":' + json.dumps(request_id) + "}" if "id_last" in attacks else "}"


def answer(message: dict[str, Any], attacks: dict[str, str]) -> Iterator[str] | None:
    """The answer to one JSON-RPC message, as text pieces; None for a notification."""
    method, request_id = message.get("method"), message.get("id")
    if request_id is None:
        return None
    params = message.get("params") or {}
    if method == "initialize":
        result: Any = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "big", "version": "1"},
        }
    elif method == "tools/list" and "page" in attacks:
        result = _page(attacks, params.get("cursor"))
    elif method == "tools/list":
        head = '{"jsonrpc":"2.0","id":' + json.dumps(request_id) + ',"result":{"tools":'
        return iter([head, *_tools(attacks), "}}"])
    elif method == "tools/call" and params.get("name") == "dump":
        return _dump(request_id, attacks)
    elif method == "tools/call":
        arguments = params.get("arguments") or {}
        size = int(os.environ.get("BIG_READ", "0")) if params.get("name") == "read" else 0
        text = "r" * size if size else str(arguments.get("text", ""))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        return iter([json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "no"}})])
    return iter([json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})])


def serve_http(attacks: dict[str, str]) -> None:
    """Serve streamable HTTP on a free loopback port: each answer is a streamed JSON body."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def mcp(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405)
        pieces = answer(json.loads(await request.body()), attacks)
        if pieces is None:
            return Response(status_code=202)
        return StreamingResponse((piece.encode() for piece in pieces), media_type="application/json")

    app = Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])
    port = int(os.environ.get("BIG_PORT", "0"))
    print(f"big MCP server listening on http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    """Answer JSON-RPC requests on stdin until it closes (`--http`: over streamable HTTP)."""
    attacks = _attacks()
    if "--http" in sys.argv:
        serve_http(attacks)
        return
    for line in sys.stdin:
        if line.strip():
            pieces = answer(json.loads(line), attacks)
            if pieces is not None:
                _send(pieces)


if __name__ == "__main__":
    main()
