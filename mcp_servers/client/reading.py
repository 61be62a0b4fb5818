"""Reading MCP messages bounded while they are read: one past its byte or part limit is refused, not held.

The SDK's stdio transport joins a server's output until a newline comes, however long, and parses
it whole; its HTTP transport reads a JSON body whole. A server answering 200 MB (or 16 MB as
400,000 one-character parts, which parse into ~0.8 GB of objects) would grow the worker until the
kernel kills it. Here each message is counted as its bytes arrive: past `MAX_MESSAGE_BYTES`, or
past `MAX_MESSAGE_PARTS` JSON objects, the rest of it is read and dropped, and the request it
answers fails with a "too large" error (`MESSAGE_TOO_LARGE`), which the registry turns into a tool
error the model reads. A refusal is permanent: sending the same call again gets the same answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
import structlog
from mcp.client import stdio as sdk_stdio
from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import ErrorData, JSONRPCError

from mcp_servers.client.errors import MessageTooLargeError
from mcp_servers.client.limits import MAX_MESSAGE_BYTES, MAX_MESSAGE_PARTS

log = structlog.get_logger(__name__)

# A JSON-RPC "server error" code (the -32000..-32099 range is the implementation's): Airlock's own
# refusal of a message while reading it.
MESSAGE_TOO_LARGE = -32099
TOO_LARGE = "result too large"
# What of a refused message is kept: enough to find its request id.
_KEPT_PREFIX = 4096
# The id where a JSON-RPC response puts it first: `{"jsonrpc":"2.0","id":…` or `{"id":…`.
_LEADING_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


def too_large(reason: str) -> str:
    """The text of a refusal: the model and the logs read it."""
    return f"{TOO_LARGE}: {reason}; Airlock refused it while reading, without keeping it"


def unread_answer(why: Exception | str) -> str:
    """What the model reads when a call's answer was refused: the reason, and that its outcome is unknown."""
    return (
        f"{str(why)[:500]}. The server answered this call, so it may have acted on it, but what it "
        "answered is unknown; do not repeat the call to find out"
    )


def is_too_large(code: int, message: str) -> bool:
    """Whether an error answer is a refusal of a message over the reading limits (stdio or HTTP)."""
    return code == MESSAGE_TOO_LARGE or TOO_LARGE in message


class MessageLimit:
    """Counts one newline-delimited message at a time; past a limit, drops the rest of it."""

    def __init__(
        self,
        server: str,
        max_bytes: int = MAX_MESSAGE_BYTES,
        max_parts: int = MAX_MESSAGE_PARTS,
        *,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self._on_refused = on_refused
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self._parts: list[bytes] = []
        self._prefix = b""
        self._size = 0
        self._objects = 0
        self._refused: str | None = None
        # Refused messages, for logs and tests.
        self.refusals = 0

    def feed(self, chunk: bytes) -> Iterator[bytes | JSONRPCError | None]:
        """The messages `chunk` completes: a whole line, a refusal, or None (refused, no id to answer)."""
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            self._add(piece)
            yield self._finish()
        self._add(rest)

    def _add(self, piece: bytes) -> None:
        self._size += len(piece)
        # Every `{` counts, in strings too: an over-count refuses sooner, never later.
        self._objects += piece.count(b"{")
        if self._refused is None:
            if len(self._prefix) < _KEPT_PREFIX:
                self._prefix += piece[: _KEPT_PREFIX - len(self._prefix)]
            self._parts.append(piece)
            if self._size > self.max_bytes:
                self._refused = f"a message of more than {self.max_bytes} bytes"
            elif self._objects > self.max_parts:
                self._refused = f"a message of more than {self.max_parts} parts (JSON objects)"
            if self._refused is not None:
                self._parts = []

    def _finish(self) -> bytes | JSONRPCError | None:
        refused, size, prefix = self._refused, self._size, self._prefix
        line = b"".join(self._parts)
        self._parts, self._prefix, self._size, self._objects, self._refused = [], b"", 0, 0, None
        if refused is None:
            return line
        self.refusals += 1
        reason = too_large(refused)
        if self._on_refused is not None:
            self._on_refused(reason)
        found = _LEADING_ID.match(prefix)
        log.warning("mcp_message_too_large", server=self.server, bytes=size, reason=refused, answered=bool(found))
        if found is None:
            return None
        value = found.group(1)
        request_id: str | int = int(value) if value[:1] != b'"' else str(_json_string(value))
        return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=MESSAGE_TOO_LARGE, message=reason))


def _json_string(value: bytes) -> Any:
    return json.loads(value)


class _CountedBody(httpx2.AsyncByteStream):
    """A response body that fails with `MessageTooLargeError` once past the limits, before holding more."""

    def __init__(self, inner: httpx2.AsyncByteStream, server: str) -> None:
        self._inner = inner
        self._server = server

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = objects = 0
        async for chunk in self._inner:
            size += len(chunk)
            objects += chunk.count(b"{")
            if size > MAX_MESSAGE_BYTES or objects > MAX_MESSAGE_PARTS:
                why = (
                    f"a message of more than {MAX_MESSAGE_BYTES} bytes"
                    if size > MAX_MESSAGE_BYTES
                    else f"a message of more than {MAX_MESSAGE_PARTS} parts (JSON objects)"
                )
                log.warning("mcp_message_too_large", server=self._server, bytes=size, reason=why, answered=True)
                raise MessageTooLargeError(too_large(why))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """An HTTP transport whose JSON bodies are counted while read (SSE events: the SDK's own limit)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, server: str) -> None:
        self._inner = inner
        self._server = server

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request`; the response's body, unless an event stream, is read through the limits."""
        response = await self._inner.handle_async_request(request)
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return response
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _CountedBody(response.stream, self._server)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters, name: str, *, on_refused: Callable[[str], None] | None = None
) -> AsyncGenerator[TransportStreams, None]:
    """The SDK's stdio transport, reading the server's stdout through a `MessageLimit`.

    Spawning, writing and the spec's shutdown sequence are the SDK's own (`mcp.client.stdio`);
    only the reader differs. A refused message whose request id cannot be found ends the session,
    so its request fails at once instead of waiting for its timeout. `on_refused` hears the
    reason of every refusal.
    """
    command = await sdk_stdio._get_executable_command(server.command)
    process = await sdk_stdio._create_platform_compatible_process(
        command=command,
        args=server.args,
        env=sdk_stdio.get_default_environment() | (server.env or {}),
        cwd=server.cwd,
    )
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    shutting_down = False
    writer_done = anyio.Event()
    limit = MessageLimit(name, on_refused=on_refused)

    async def stdout_reader() -> None:
        assert process.stdout, "Opened process is missing stdout"
        try:
            async with read_stream_writer:
                try:
                    async for chunk in process.stdout:
                        for message in limit.feed(chunk):
                            if message is None:
                                # No request to answer: end the session now (its calls fail at once),
                                # before the drain below waits for the server to stop writing.
                                await read_stream_writer.aclose()
                                return
                            parsed = (
                                SessionMessage(message)
                                if isinstance(message, JSONRPCError)
                                else _parse(message, server.encoding, server.encoding_error_handler)
                            )
                            try:
                                await read_stream_writer.send(parsed)
                            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                                return
                finally:
                    await sdk_stdio._drain_stdout(process)
        except anyio.ClosedResourceError:
            pass
        except (anyio.BrokenResourceError, ConnectionError):
            if not shutting_down:
                log.warning("mcp_stdout_failed", server=name)

    async def stdin_writer() -> None:
        assert process.stdin, "Opened process is missing stdin"
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    payload = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    data = (payload + "\n").encode(encoding=server.encoding, errors=server.encoding_error_handler)
                    await process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(sdk_stdio._WRITER_FLUSH_TIMEOUT):
            await writer_done.wait()
        await sdk_stdio._stop_server_process(process)
        await sdk_stdio._aclose_all(read_stream, write_stream, read_stream_writer, write_stream_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            shutting_down = True
            with anyio.CancelScope(shield=True):
                await shutdown()
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()


def _parse(line: bytes, encoding: str, errors: str) -> SessionMessage | Exception:
    try:
        text = line.decode(encoding, errors=errors)
    except UnicodeDecodeError as err:
        return err
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(text, by_name=False))
    except ValueError as err:
        return err
