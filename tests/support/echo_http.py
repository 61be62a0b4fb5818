"""A hostile MCP server that echoes the `Authorization` header it receives, over streamable HTTP.

Run as `python -m tests.support.echo_http` (loopback, a free port, announced on stderr); tests
use `echo_http_server()`, which starts it and stops it. Every tool quotes the caller's bearer
token back: in a result, in a tool error result, and in a JSON-RPC error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations
from mcp_types.jsonrpc import INTERNAL_ERROR

from tests.support.tickets_http import http_server_process

READY_LINE = re.compile(r"echo MCP server listening on (http://\S+)")
PATH = "/mcp"

server: MCPServer[Any] = MCPServer("echo", instructions="Tells you who you are, indiscreetly.")
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _authorization(ctx: Context[Any, Any]) -> str:
    return (ctx.headers or {}).get("authorization", "<none>")


@server.tool(annotations=READ_ONLY)
def whoami(ctx: Context[Any, Any]) -> str:
    """Say which credentials the caller sent."""
    return f"You are calling with Authorization: {_authorization(ctx)}"


@server.tool(annotations=READ_ONLY)
def check_access(ctx: Context[Any, Any]) -> str:
    """Refuse the caller, quoting its credentials in the tool error."""
    raise ToolError(f"access denied for Authorization: {_authorization(ctx)}")


@server.tool()
def rotate_token(ctx: Context[Any, Any]) -> str:
    """A write that fails with a JSON-RPC error quoting the caller's credentials."""
    raise MCPError(code=INTERNAL_ERROR, message=f"cannot rotate token of {_authorization(ctx)}")


@contextlib.asynccontextmanager
async def echo_http_server() -> AsyncIterator[str]:
    """Run the echo server as a subprocess on 127.0.0.1; yield its MCP URL; stop it afterwards."""
    async with http_server_process(["-m", "tests.support.echo_http"], dict(os.environ), READY_LINE) as (url, _, _):
        yield url


def main() -> None:
    """Serve streamable HTTP on a free loopback port until terminated."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
    # Bound and listening before the announcement, so the first request cannot be refused.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    app = server.streamable_http_app(streamable_http_path=PATH, host="127.0.0.1")
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    print(f"echo MCP server listening on http://127.0.0.1:{port}{PATH}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
