"""Entry point: serve the tickets MCP server over stdio, or over streamable HTTP with --http."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp

from mcp_servers import logs
from mcp_servers.tickets import guard
from mcp_servers.tickets.server import server

logger = logging.getLogger("mcp_servers.tickets")
LOG_LEVEL_ENV = "TICKETS_LOG_LEVEL"
"""Environment variable with the log level (default INFO); `airlock mcp` asks for WARNING."""


class _ReadyServer(uvicorn.Server):
    """A uvicorn server that logs one readiness line once its socket is bound and listening."""

    def __init__(self, config: uvicorn.Config, path: str) -> None:
        """Serve `config`, announcing the MCP endpoint at `path`."""
        super().__init__(config)
        self._path = path

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then announce the bound address (real port even for port 0)."""
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        logger.info("tickets MCP server listening on http://%s:%d%s", host, port, self._path)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mcp_servers.tickets",
        description="Tickets MCP server. Serves stdio unless --http is given. "
        "The database file is $TICKETS_DB (default .airlock/tickets.db in the checkout); the log "
        f"level is ${LOG_LEVEL_ENV} (default INFO). Over HTTP every request "
        f"needs 'Authorization: Bearer ${guard.TOKEN_ENV}', and its Host header must name this server.",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port; 0 picks a free one")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a name clients reach this server by (Host header; repeatable; also "
        f"${guard.ALLOWED_HOSTS_ENV}, comma-separated). The bind address and, for loopback or "
        "0.0.0.0, the loopback names are always allowed",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help=f"serve HTTP without a bearer token (local experiments only; ${guard.TOKEN_ENV} unset)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="stderr log lines: JSON unless stderr is a terminal (auto, the default)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until stdin closes (stdio) or a signal arrives (HTTP)."""
    args = _parse_args(argv)
    # After MCPServer was built (it installs a root handler of its own): the worker's format,
    # on stderr, so stdout stays free for the stdio protocol.
    level = os.environ.get(LOG_LEVEL_ENV, "").upper()
    logs.configure(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO", args.log_format)
    if not args.http:
        server.run("stdio")
        return
    configured = [*args.allowed_host, *guard.split_hosts(os.environ.get(guard.ALLOWED_HOSTS_ENV, ""))]
    try:
        token = guard.token_from(os.environ, insecure_no_auth=args.insecure_no_auth)
        security = guard.transport_security(args.host, configured)
    except guard.GuardError as err:
        logger.error("tickets MCP server not started: %s", err)
        sys.exit(2)
    app = server.streamable_http_app(streamable_http_path=args.path, host=args.host, transport_security=security)
    guarded: ASGIApp = app
    if token is None:
        logger.warning(
            "tickets MCP server: no authentication (--insecure-no-auth); anyone who reaches "
            "the port can read and change tickets"
        )
    else:
        guarded = guard.BearerToken(app, token)
    logger.info(
        "tickets MCP server: bearer token %s, allowed hosts %s",
        "required" if token else "NOT required",
        ", ".join(security.allowed_hosts),
    )
    config = uvicorn.Config(guarded, host=args.host, port=args.port, log_config=None, access_log=False, lifespan="on")
    _ReadyServer(config, args.path).run()


if __name__ == "__main__":
    main()
