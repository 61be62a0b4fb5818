"""A TLS-terminating TCP proxy on loopback, for a Temporal dev server that only speaks plaintext.

`temporal server start-dev` (CLI 1.9.1) has no TLS options: its frontend config is built in code
and `--dynamic-config-value` cannot reach TLS, which is static server config. Tests put this proxy
in front of it: clients speak TLS (HTTP/2 via ALPN, optionally with a required client
certificate) to the proxy, which forwards the decrypted gRPC bytes to the dev server unchanged.
Each handshake's outcome is recorded, so a test can tell "refused by TLS" from "never connected".
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.certs import Issued

HANDSHAKE_TIMEOUT_S = 10.0
LINGER_S = 5.0
CHUNK = 64 * 1024


@dataclass
class TlsProxy:
    """Where the proxy listens, and each handshake's outcome (`"ok"` or the error), in order."""

    address: str
    handshakes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> list[str]:
        """The handshakes that failed, with the server side's reason."""
        return [outcome for outcome in self.handshakes if outcome != "ok"]


def server_context(identity: Issued, client_ca: Path | None) -> ssl.SSLContext:
    """A server context for `identity`; with `client_ca`, a client certificate it signed is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(identity.cert, identity.key)
    # gRPC clients insist on HTTP/2 being negotiated.
    context.set_alpn_protocols(["h2"])
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


class _Terminated:
    """One client connection's TLS state, driven by hand over memory BIOs.

    asyncio's own TLS drops the alert a failed handshake produces; a real server sends it (for
    example "certificate required"), and the client's error message depends on it.
    """

    def __init__(self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._reader, self._writer = reader, writer

    async def _flush(self) -> None:
        if pending := self._outgoing.read():
            self._writer.write(pending)
            await self._writer.drain()

    async def handshake(self) -> None:
        """Complete the server side of the handshake; a refusal is sent to the client, then raised."""
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._reader.read(CHUNK)
                if not data:
                    raise ConnectionResetError("client closed the connection during the handshake") from None
                self._incoming.write(data)
            except ssl.SSLError:
                await self._flush()  # the alert that tells the client why
                await self._linger()
                raise
            else:
                await self._flush()
                return

    async def _linger(self) -> None:
        """Half-close, then read what the client still sends until it closes (or a deadline).

        Closing with unread bytes in the receive buffer makes the kernel send a reset, which can
        destroy the alert before the client reads it (TLS 1.3 clients send data right after
        their Finished message, before they know the handshake failed).
        """
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.write_eof()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(LINGER_S):
                while await self._reader.read(CHUNK):
                    pass

    async def to_upstream(self, upstream: asyncio.StreamWriter) -> None:
        """Decrypt what the client sends and forward it, until either side closes."""
        while data := await self._reader.read(CHUNK):
            self._incoming.write(data)
            while True:
                try:
                    plain = self._tls.read(CHUNK)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    return
                upstream.write(plain)
            await upstream.drain()
            await self._flush()  # post-handshake messages (tickets, key updates)

    async def from_upstream(self, upstream: asyncio.StreamReader) -> None:
        """Encrypt what the upstream answers and send it to the client, until either side closes."""
        while data := await upstream.read(CHUNK):
            self._tls.write(data)
            await self._flush()


@contextlib.asynccontextmanager
async def tls_proxy(upstream: str, identity: Issued, *, client_ca: Path | None = None) -> AsyncIterator[TlsProxy]:
    """Serve TLS on a free 127.0.0.1 port, forwarding to plaintext `upstream` (`host:port`)."""
    context = server_context(identity, client_ca)
    up_host, _, up_port = upstream.rpartition(":")
    tasks: set[asyncio.Task[None]] = set()
    proxy = TlsProxy(address="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Terminated(context, reader, writer)
        try:
            try:
                await asyncio.wait_for(connection.handshake(), HANDSHAKE_TIMEOUT_S)
            except (ssl.SSLError, ConnectionError, TimeoutError) as err:
                proxy.handshakes.append(f"{type(err).__name__}: {err}")
                return
            proxy.handshakes.append("ok")
            up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
            try:
                sides = [
                    asyncio.create_task(connection.to_upstream(up_writer)),
                    asyncio.create_task(connection.from_upstream(up_reader)),
                ]
                # Either side closing (or failing) ends the connection for both.
                _, rest = await asyncio.wait(sides, return_when=asyncio.FIRST_COMPLETED)
                for task in rest:
                    task.cancel()
                await asyncio.gather(*sides, return_exceptions=True)
            finally:
                up_writer.close()
        finally:
            writer.close()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(handle(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    proxy.address = f"{host}:{port}"
    try:
        yield proxy
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
