"""A person's one-time OAuth login: a loopback redirect listener and the browser step it waits for.

`airlock mcp login SERVER` prints the authorization URL (a person opens it); tests and the
conformance adapter pass a `browser` that follows the URL themselves. PKCE, state and the token
request are the mcp SDK's; this module only receives the redirect on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import structlog
from mcp.client.auth import OAuthFlowError
from mcp.shared.auth import AuthorizationCodeResult

log = structlog.get_logger(__name__)

Browser = Callable[[str], Awaitable[None]]
PAGE = b"<!doctype html><title>Airlock</title><p>Airlock is logged in. You may close this window.</p>"
MAX_REQUEST_LINE = 16_384


class LoopbackLogin:
    """Listens on 127.0.0.1 for the authorization server's redirect back to Airlock."""

    def __init__(self, browser: Browser, *, port: int = 0, wait_seconds: float = 300.0) -> None:
        self._browser = browser
        self._port = port
        self._wait = wait_seconds
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[AuthorizationCodeResult] | None = None

    @property
    def port(self) -> int:
        """The port the listener got."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> LoopbackLogin:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def redirect(self, url: str) -> None:
        """Hand the authorization URL to the browser (the SDK's `redirect_handler`)."""
        self._result = asyncio.get_running_loop().create_future()
        await self._browser(url)

    async def callback(self) -> AuthorizationCodeResult:
        """Wait for the redirect to arrive (the SDK's `callback_handler`)."""
        if self._result is None:
            raise OAuthFlowError("no authorization was started")
        try:
            return await asyncio.wait_for(self._result, self._wait)
        except TimeoutError:
            raise OAuthFlowError(f"no login arrived within {self._wait:.0f}s") from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline())[:MAX_REQUEST_LINE].decode(errors="replace")
            while (await reader.readline()).strip():
                pass  # headers: nothing in them matters
            parts = line.split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            query = {key: values[0] for key, values in parse_qs(target.query).items()}
            found = target.path == "/callback" and ("code" in query or "error" in query)
            if found and self._result is not None and not self._result.done():
                if "error" in query:
                    self._result.set_exception(
                        OAuthFlowError(
                            f"the authorization server refused: {query.get('error_description') or query['error']}"
                        )
                    )
                else:
                    self._result.set_result(
                        AuthorizationCodeResult(
                            code=query["code"],
                            state=query.get("state"),
                            iss=query.get("iss"),
                        )
                    )
            status = b"200 OK" if found else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: text/html\r\ncontent-length: "
                + str(len(PAGE)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + PAGE
            )
            await writer.drain()
        except (OSError, UnicodeError) as err:
            log.warning("oauth_redirect_unreadable", error=repr(err))
        finally:
            writer.close()
