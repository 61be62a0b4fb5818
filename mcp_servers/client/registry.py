"""The MCP server registry: `servers.toml` → live connections, opened once and reused per worker."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx2
import structlog
from mcp import Client, StdioServerParameters
from mcp.client.session import ElicitationFnT, IncomingMessage
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import ProgressFnT as Progress
from mcp.shared.exceptions import MCPError
from mcp_types import URL_ELICITATION_REQUIRED, CallToolResult, TextContent, Tool, ToolListChangedNotification
from mcp_types.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST, REQUEST_TIMEOUT

from mcp_servers.client import auth, elicitation, results
from mcp_servers.client.changes import watch_tools
from mcp_servers.client.config import (
    CONNECT_TIMEOUT_FLOOR_S,
    SERVER_NAME,
    BreakerConfig,
    OAuthConfig,
    ServerConfig,
    expand,
    load_servers,
    referenced_variables,
)
from mcp_servers.client.errors import RequestNotSentError, ServerFailedError
from mcp_servers.client.limits import RateLimiter
from mcp_servers.client.login import LoopbackLogin
from mcp_servers.client.reading import BoundedTransport, bounded_stdio_client, is_too_large, unread_answer

__all__ = [
    "CONNECT_TIMEOUT_FLOOR_S",
    "SERVER_NAME",
    "BreakerConfig",
    "Connection",
    "McpPool",
    "OAuthConfig",
    "ServerConfig",
    "expand",
    "load_servers",
    "referenced_variables",
]

log = structlog.get_logger(__name__)
# A tool listing stops at whichever comes first (prepare keeps at most 128 a server).
MAX_TOOL_PAGES = 100
MAX_LISTED_TOOLS = 1_000
# Told each OAuth token and client secret the worker comes to hold (the worker's redactor learns them).
SecretSink = Callable[[str | None], None]


class _Session:
    """One opened MCP session, the task that owns it, and how many calls are borrowing it.

    A broken session is *retired*, not closed: new calls get a fresh session at once, and the
    old one is closed when its last borrower returns, so a healthy call in flight on it is
    never cancelled by another call's failure.
    """

    def __init__(self, owner: asyncio.Task[None], closing: asyncio.Event, client: Client) -> None:
        self.owner = owner
        self.closing = closing
        self.client = client
        self.borrowers = 0
        self.retired = False

    @property
    def alive(self) -> bool:
        """Whether the owner task still holds the session open."""
        return not self.owner.done() and not self.retired

    def retire(self) -> None:
        """Hand out no more; close once nobody borrows it."""
        self.retired = True
        if self.borrowers == 0:
            self.closing.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Close now, whoever borrows it (worker shutdown)."""
        self.retired = True
        self.closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.owner), grace)
        except TimeoutError:
            self.owner.cancel()
            await asyncio.gather(self.owner, return_exceptions=True)


class Connection:
    """One long-lived MCP session to one server, replaced when it breaks.

    The MCP client is entered and exited by a dedicated owner task because anyio cancel
    scopes must be closed by the task that opened them; activities only borrow the session.
    """

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        environ: Mapping[str, str],
        token_dir: Path | None = None,
        *,
        login: LoopbackLogin | None = None,
        elicitation: ElicitationFnT | None = None,
        on_secret: SecretSink | None = None,
        output_checker: results.OutputChecker | None = None,
    ) -> None:
        self.name = name
        self._on_secret = on_secret
        self._output_checker = output_checker
        # Only a person's command (`airlock mcp login/call`) has these; the worker never waits for a browser.
        self._login = login
        self._elicitation = elicitation
        self.config = config
        self._environ = environ
        self._token_dir = token_dir
        self._current: _Session | None = None
        self._retired: set[_Session] = set()
        self._lock = asyncio.Lock()
        self.connects = 0
        self.breaker = config.breaker.build()
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._rate = RateLimiter(config.rate_limit) if config.rate_limit else None
        self.in_flight = 0
        self.peak_in_flight = 0
        # Set when the server says its tool list changed; the next listing clears it.
        self.tools_changed = False
        self._tools: list[Tool] | None = None
        # The session the tools were listed on, and the one that would hear them change (if any).
        self._listed_on: Client | None = None
        self._hearing: Client | None = None
        self.listings = 0
        # The last 401/403 this server answered ("401 unauthorized from server X: reason"), until a success.
        self.refusal: str | None = None
        # Messages refused while read (mcp_servers/client/reading.py), and the last one's reason.
        self.refused_messages = 0
        self._refused_why = ""
        # Said once, at the first connection that sends client credentials without a pinned issuer.
        self._unpinned = auth.sends_unpinned_credentials(config)

    def _target(self) -> Any:
        config = self.config
        if config.transport == "stdio":
            assert config.command is not None
            # "python" means the worker's own interpreter, so a venv need not be activated.
            command = sys.executable if config.command == "python" else config.command
            env = get_default_environment()
            env.update({key: self._environ[key] for key in config.env if key in self._environ})
            params = StdioServerParameters(command=command, args=config.args, env=env, cwd=config.cwd)
            # Each line the server writes is counted while read (mcp_servers/client/reading.py).
            return bounded_stdio_client(params, self.name, on_refused=self._message_refused)
        assert config.url is not None
        if self._unpinned:
            self._unpinned = False
            log.warning(
                "mcp_oauth_issuer_unset",
                server=self.name,
                why="the server's metadata decides which authorization server gets the client credentials; "
                "set issuer in its oauth table",
            )
        headers = {key: expand(value, self._environ) for key, value in config.headers.items()}
        timeout = httpx2.Timeout(config.timeout_seconds, read=max(config.timeout_seconds, 300.0))
        login = self._login
        provider = auth.provider_for(
            self.name,
            config,
            self._environ,
            self._token_dir,
            redirect=login.redirect if login else None,
            callback=login.callback if login else None,
            port=login.port if login else None,
            on_secret=self._on_secret,
        )
        http = create_mcp_http_client(headers=headers, timeout=timeout, auth=provider)
        # Each JSON body is counted while read (mcp_servers/client/reading.py); SSE events have the SDK's limit.
        http._transport = BoundedTransport(http._transport, self.name)
        http.event_hooks["response"].append(self._watch_refusals)
        return streamable_http_client(config.url, http_client=http)

    async def _watch_refusals(self, response: httpx2.Response) -> None:
        # The transport turns a 401/403 into a bare "error response"; keep the reason it hides.
        if response.status_code in (401, 403):
            self.refusal = auth.refusal(self.name, response)
        elif response.status_code < 300:
            self.refusal = None

    def _message_refused(self, why: str) -> None:
        self.refused_messages += 1
        self._refused_why = why

    def _describe(self, err: BaseException) -> str:
        return self.refusal or auth.describe_failure(self.name, err)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, ToolListChangedNotification):
            self._tools_changed()

    @property
    def hears_changes(self) -> bool:
        """Whether the live session would hear the server announce a change to its tools."""
        current = self._current
        return current is not None and current.alive and self._hearing is current.client

    def _hear(self, client: Client, hearing: bool) -> None:
        if hearing:
            self._hearing = client
        elif self._hearing is client:
            self._hearing = None

    def _tools_changed(self) -> None:
        # One line per change, however often a server repeats itself until the next listing.
        if not self.tools_changed:
            log.info("mcp_tools_changed", server=self.name)
        self.tools_changed = True

    async def client(self) -> Client:
        """The live session's client, connecting first if there is none."""
        return (await self._session()).client

    async def _session(self) -> _Session:
        current = self._current
        if current is not None and current.alive:
            return current
        async with self._lock:
            current = self._current
            if current is not None and current.alive:
                return current
            if current is not None:
                self._retire(current)
            self._current = await self._open()
            self.connects += 1
            log.info("mcp_connected", server=self.name, transport=self.config.transport, connects=self.connects)
            return self._current

    async def _open(self) -> _Session:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        closing = asyncio.Event()
        owner = asyncio.create_task(self._own(ready, closing), name=f"mcp:{self.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.config.connect_timeout_seconds)
        except TimeoutError:
            closing.set()
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
            raise ServerFailedError(f"MCP server {self.name!r} did not answer in time") from None
        except ServerFailedError:
            await asyncio.gather(owner, return_exceptions=True)
            raise
        return _Session(owner, closing, client)

    async def _own(self, ready: asyncio.Future[Client], closing: asyncio.Event) -> None:
        try:
            async with Client(
                self._target(),
                read_timeout_seconds=self.config.timeout_seconds,
                message_handler=self._on_message,
                # The worker answers input requests from the answers people gave (mcp_servers/client/elicitation.py).
                elicitation_callback=self._elicitation or elicitation.answer,
            ) as client:
                if ready.done():
                    # The caller stopped waiting (connect timeout); nobody will use this session.
                    return
                ready.set_result(client)
                async with anyio.create_task_group() as watchers:
                    if self.config.transport == "stdio":
                        # Not over HTTP: a held-open listen request keeps a server's graceful
                        # shutdown (a rolling restart) waiting on this worker.
                        watchers.start_soon(
                            watch_tools, client, self.name, self._tools_changed, functools.partial(self._hear, client)
                        )
                    await closing.wait()
                    watchers.cancel_scope.cancel()
        except BaseException as err:  # the owner task is a task boundary: report, never lose it
            if not ready.done():
                why = self._describe(err)
                ready.set_exception(ServerFailedError(f"MCP server {self.name!r} is unreachable: {why}"))
            elif not isinstance(err, asyncio.CancelledError):
                log.warning("mcp_connection_lost", server=self.name, error=self._describe(err))
            if isinstance(err, asyncio.CancelledError):
                raise

    def _retire(self, session: _Session) -> None:
        if self._current is session:
            self._current = None
        if not session.owner.done():
            self._retired.add(session)
            session.owner.add_done_callback(lambda _: self._retired.discard(session))
        session.retire()

    @contextlib.asynccontextmanager
    async def _borrow(self, session: _Session) -> AsyncIterator[Client]:
        session.borrowers += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield session.client
        finally:
            session.borrowers -= 1
            self.in_flight -= 1
            if session.retired and session.borrowers == 0:
                session.closing.set()

    def invalidate(self, client: Client) -> None:
        """Stop handing out the session of `client` after it broke; calls still on it finish."""
        for session in (self._current, *self._retired):
            if session is not None and session.client is client:
                self._retire(session)

    async def list_tools(self) -> list[Tool]:
        """Every tool the server offers (all pages).

        Listed afresh unless this session has listed them already and would have heard of a change
        since (the server announces changes and has announced none).
        """
        session = await self._session()
        hearing = self.hears_changes
        if hearing and self._listed_on is session.client and self._tools is not None and not self.tools_changed:
            return list(self._tools)
        self.listings += 1
        tools: list[Tool] = []
        cursor: str | None = None
        self.tools_changed = False
        async with self._borrow(session) as client:
            try:
                for _ in range(MAX_TOOL_PAGES):
                    page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    # A server's cursor may never end: the listing stops at a bound (prepare keeps fewer still).
                    if not cursor or len(tools) >= MAX_LISTED_TOOLS:
                        break
            except Exception as err:
                if not _is_protocol_error(err) and not _is_timeout(err):
                    self._retire(session)
                raise ServerFailedError(
                    f"MCP server {self.name!r}: listing tools failed: {self._describe(err)}"
                ) from err
        self._tools = tools
        # A listing made before the session could hear changes may already be stale: not kept.
        self._listed_on = session.client if hearing else None
        return list(tools)

    def listed(self, tool: str) -> Tool | None:
        """The tool as last listed (its output schema and annotations), if it was."""
        return next((t for t in self._tools or () if t.name == tool), None)

    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
        *,
        progress: Progress | None = None,
        request_timeout: float | None = None,
        asking: elicitation.Round | None = None,
    ) -> CallToolResult:
        """Call one tool within the server's concurrency and rate limits.

        Raises `BreakerRefusedError` or `RequestNotSentError` when the request never left (safe to resend), and
        `ServerFailedError` when it timed out or the connection broke after sending. Only a
        broken connection replaces the session; a timeout cancels that one request
        (`notifications/cancelled`) and leaves every other call on the session alone. `request_timeout`
        overrides the server's request timeout for this one call. `asking` answers the call's input
        requests (and keeps the first one nobody answered yet).
        """
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            probe = self.breaker.check()
            try:
                return await self._send(tool, arguments, meta, progress, request_timeout, asking)
            except asyncio.CancelledError:
                if probe:
                    self.breaker.release()
                raise

    async def _send(
        self,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
        progress: Progress | None,
        request_timeout: float | None,
        asking: elicitation.Round | None = None,
    ) -> CallToolResult:
        try:
            session = await self._session()
        except ServerFailedError as err:
            self._failed()
            raise RequestNotSentError(str(err)) from err
        refused_before = self.refused_messages
        async with self._borrow(session) as client:
            try:
                # A result that misses its output schema is kept, marked: the server did act on the call.
                with (
                    elicitation.attributed(client.session, asking),
                    results.output_checked(client.session, self._output_checker) as marked,
                ):
                    result = marked(
                        await client.call_tool(
                            tool,
                            arguments,
                            read_timeout_seconds=request_timeout,
                            progress_callback=progress,
                            meta=meta,  # type: ignore[arg-type]
                        )
                    )
            except Exception as err:
                if _is_protocol_error(err):
                    self.breaker.success()
                    if isinstance(err, MCPError) and is_too_large(err.code, err.error.message):
                        # Refused while read: sent again it would be answered the same, so the model hears
                        # it now. Not an error: the server answered, so a write did reach it and may have acted.
                        return CallToolResult(content=[TextContent(type="text", text=unread_answer(err))])
                    if asking is not None and isinstance(err, MCPError) and err.code == URL_ELICITATION_REQUIRED:
                        # Not a failure: the server waits for the person to visit a URL first.
                        asking.required(err.error)
                        return CallToolResult(content=[TextContent(type="text", text=str(err)[:1000])], is_error=True)
                    raise
                if _is_output_problem(err):
                    # The server answered, but not as its `outputSchema` promised: the model hears it.
                    self.breaker.success()
                    return CallToolResult(content=[TextContent(type="text", text=str(err)[:1000])], is_error=True)
                if self.refused_messages != refused_before:
                    # The session ended on an answer too large to read (its request id unknown):
                    # answered all the same, so it is not resent either.
                    self.breaker.success()
                    self._retire(session)
                    return CallToolResult(content=[TextContent(type="text", text=unread_answer(self._refused_why))])
                self._failed()
                if _is_timeout(err):
                    raise ServerFailedError(f"MCP server {self.name!r}: {tool} timed out") from err
                self._retire(session)
                raise ServerFailedError(f"MCP server {self.name!r}: {tool} failed: {self._describe(err)}") from err
        self.breaker.success()
        return result

    def _failed(self) -> None:
        if self.breaker.failure():
            log.warning(
                "mcp_circuit_opened",
                server=self.name,
                failures=self.breaker.threshold,
                cooldown_seconds=self.breaker.cooldown,
            )

    async def close(self) -> None:
        """End every session (and the stdio child processes)."""
        async with self._lock:
            sessions = [s for s in (self._current, *self._retired) if s is not None]
            self._current = None
            await asyncio.gather(*(s.stop() for s in sessions), return_exceptions=True)


def _is_output_problem(err: BaseException) -> bool:
    """The SDK refused a result whose structured content does not match the tool's output schema."""
    text = str(err)
    return isinstance(err, RuntimeError) and (
        text.startswith("Invalid structured content") or "did not return structured content" in text
    )


def _is_timeout(err: BaseException) -> bool:
    """This one request ran out of time; the session itself may be fine."""
    return isinstance(err, TimeoutError) or (isinstance(err, MCPError) and err.code == REQUEST_TIMEOUT)


def _is_protocol_error(err: BaseException) -> bool:
    """An error answer from a live server, as opposed to a broken or expired connection."""
    if not isinstance(err, MCPError) or err.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
        return False
    # An unknown session id (the server restarted) means: open a new session.
    return not (err.code == INVALID_REQUEST and "session" in err.error.message.lower())


class McpPool:
    """Connections to every registered server, shared by all activities of one worker."""

    def __init__(
        self,
        servers: dict[str, ServerConfig],
        environ: Mapping[str, str] | None = None,
        *,
        token_dir: Path | None = None,
        login: LoopbackLogin | None = None,
        elicitation: ElicitationFnT | None = None,
        on_secret: SecretSink | None = None,
        output_checker: results.OutputChecker | None = None,
    ) -> None:
        self.servers = servers
        env = dict(os.environ if environ is None else environ)
        self.token_dir = token_dir if token_dir is not None else auth.default_token_dir(env)
        self._connections = {
            name: Connection(
                name,
                config,
                env,
                self.token_dir,
                login=login,
                elicitation=elicitation,
                on_secret=on_secret,
                output_checker=output_checker,
            )
            for name, config in servers.items()
        }

    def connection(self, name: str) -> Connection:
        """The connection to server `name`."""
        return self._connections[name]

    async def close(self) -> None:
        """Close every session and stop every stdio child."""
        await asyncio.gather(*(conn.close() for conn in self._connections.values()), return_exceptions=True)
