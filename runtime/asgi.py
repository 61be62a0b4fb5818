"""Serve a small ASGI app (the inbox, `/healthz`) inside a process that owns its own signals (worker side)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that embeds it (worker, CLI) owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to the embedding process."""
        yield


async def serve_app(app: Any, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve `app` on the bound `sock` until `stop` is set; the socket is closed on the way out.

    `proxy_headers` is off: uvicorn would otherwise replace the client address with
    X-Forwarded-For (from any loopback peer by default) before the app asks who is speaking. An
    app that trusts a proxy must see the TCP peer; X-Forwarded-For is the proxy's to set.
    """
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", server_header=False, proxy_headers=False
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopped.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
        sock.close()
