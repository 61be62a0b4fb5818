"""Entry point: serve the tickets MCP server over stdio, or over streamable HTTP with --http."""

from __future__ import annotations

import argparse
import logging
import socket
from collections.abc import Sequence

import uvicorn

from mcp_servers import logs
from mcp_servers.tickets.server import server

logger = logging.getLogger("mcp_servers.tickets")


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
        "The database file is $TICKETS_DB (default ./.airlock/tickets.db).",
    )
    parser.add_argument(
        "--http", action="store_true", help="serve streamable HTTP instead of stdio"
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port; 0 picks a free one")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument("--log-format", choices=("auto", "json", "console"), default="auto",
                        help="stderr log lines: JSON unless stderr is a terminal (auto, the default)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until stdin closes (stdio) or a signal arrives (HTTP)."""
    args = _parse_args(argv)
    # After MCPServer was built (it installs a root handler of its own): the worker's format,
    # on stderr, so stdout stays free for the stdio protocol.
    logs.configure("INFO", args.log_format)
    if not args.http:
        server.run("stdio")
        return
    app = server.streamable_http_app(streamable_http_path=args.path, host=args.host)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, access_log=False, lifespan="on"
    )
    _ReadyServer(config, args.path).run()


if __name__ == "__main__":
    main()
