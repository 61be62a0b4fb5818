"""Entry point: serve the tickets MCP server over stdio, or over streamable HTTP with --http."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn

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
    return parser.parse_args(argv)


def _configure_logging() -> None:
    # force=True: constructing MCPServer already installed a root handler; stdout stays free
    # for the stdio protocol either way.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until stdin closes (stdio) or a signal arrives (HTTP)."""
    args = _parse_args(argv)
    _configure_logging()
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
