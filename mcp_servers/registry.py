"""The MCP server registry: `servers.toml` → live connections, opened once and reused per worker."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx2
import structlog
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Tool
from mcp_types.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST, REQUEST_TIMEOUT
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_servers.limits import CircuitBreaker, RateLimiter
from workflows.errors import ConfigError
from workflows.tomlfiles import parse_duration, read_toml, validate

log = structlog.get_logger(__name__)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# No dots: a policy rule `server.tool` splits at the first dot, so a dotted server name could
# never be told apart from a tool of another server whose own name has dots.
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
CONNECT_TIMEOUT_FLOOR_S = 10.0


def _positive_duration(value: str | float) -> str | float:
    if parse_duration(value) <= 0:
        raise ValueError("must be a positive duration")
    return value


class BreakerConfig(BaseModel):
    """One `[servers.<name>.breaker]` table: when the server's circuit opens, and for how long."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=5, ge=1, le=10_000)
    window: str | float = "30s"
    cooldown: str | float = "10s"

    _durations = field_validator("window", "cooldown")(_positive_duration)

    def build(self) -> CircuitBreaker:
        """A fresh breaker with these thresholds."""
        return CircuitBreaker(
            threshold=self.failures, window=parse_duration(self.window), cooldown=parse_duration(self.cooldown)
        )


class ServerConfig(BaseModel):
    """One `[servers.<name>]` table."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    trust: Literal["trusted", "untrusted"] = "untrusted"
    idempotency_keys: bool = False
    timeout: str | float = "30s"
    max_concurrency: int = Field(default=16, ge=1, le=10_000)
    rate_limit: float | None = Field(default=None, gt=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

    _timeout = field_validator("timeout")(_positive_duration)

    @model_validator(mode="after")
    def _transport_fields(self) -> ServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs 'command'")
        if self.transport == "http" and not self.url:
            raise ValueError("an http server needs 'url'")
        return self

    @property
    def trusted(self) -> bool:
        """Whether this server's tool annotations are believed."""
        return self.trust == "trusted"

    @property
    def timeout_seconds(self) -> float:
        """Per-request timeout in seconds."""
        return parse_duration(self.timeout)

    @property
    def connect_timeout_seconds(self) -> float:
        """How long opening a session may take: `timeout`, but never less than the floor.

        A stdio server is a fresh interpreter importing the MCP SDK, which takes a second or more
        on a busy host; a short request timeout must not make such a server unreachable.
        """
        return max(self.timeout_seconds, CONNECT_TIMEOUT_FLOOR_S)

    @property
    def call_deadline_seconds(self) -> float:
        """How long one tool call may take end to end, as the activity's start-to-close timeout.

        Connecting, then the request, plus a second: the registry's own timeouts, which the
        circuit breaker counts, must fire before the activity's, which it never sees.
        """
        return self.connect_timeout_seconds + self.timeout_seconds + 1.0


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: dict[str, ServerConfig] = Field(default_factory=dict)


def load_servers(path: Path, environ: Mapping[str, str]) -> dict[str, ServerConfig]:
    """Load and check `servers.toml`; every `${VAR}` a header names must be set on the worker."""
    registry = validate(_RegistryFile, read_toml(path), path=path)
    for name, server in registry.servers.items():
        if not SERVER_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: key {'servers.' + name!r}: a server name must match {SERVER_NAME.pattern} "
                "(lower-case letters, digits, '_' and '-'; no dots)"
            )
        for header, var in _header_references(server):
            if var not in environ:
                raise ConfigError(
                    f"{path}: key 'servers.{name}.headers.{header}': "
                    f"environment variable {var!r} is not set on the worker"
                )
    return registry.servers


def _header_references(config: ServerConfig) -> Iterator[tuple[str, str]]:
    """`(header, variable)` for every `${VAR}` in a server's headers."""
    for header, value in config.headers.items():
        for var in _VAR.findall(value):
            yield header, var


def referenced_variables(config: ServerConfig) -> list[str]:
    """Names of the worker variables a server's headers expand (`${VAR}`): the server's secrets."""
    return sorted({var for _, var in _header_references(config)})


def expand(value: str, environ: Mapping[str, str]) -> str:
    """Replace `${VAR}` with the worker's value; done at connect time, never stored."""
    return _VAR.sub(lambda match: environ[match.group(1)], value)


class ServerUnavailable(Exception):
    """The server could not be reached, or the connection broke during a call."""


class NotSent(ServerUnavailable):
    """The server could not be reached, so the request was never sent."""


class Connection:
    """One long-lived MCP session to one server, reopened when it breaks.

    The MCP client is entered and exited by a dedicated owner task because anyio cancel
    scopes must be closed by the task that opened them; activities only borrow the session.
    """

    def __init__(self, name: str, config: ServerConfig, environ: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self._environ = environ
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        self.breaker = config.breaker.build()
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._rate = RateLimiter(config.rate_limit) if config.rate_limit else None
        self.in_flight = 0
        self.peak_in_flight = 0

    def _target(self) -> Any:
        config = self.config
        if config.transport == "stdio":
            assert config.command is not None
            # "python" means the worker's own interpreter, so a venv need not be activated.
            command = sys.executable if config.command == "python" else config.command
            env = get_default_environment()
            env.update({key: self._environ[key] for key in config.env if key in self._environ})
            return StdioServerParameters(command=command, args=config.args, env=env, cwd=config.cwd)
        assert config.url is not None
        headers = {key: expand(value, self._environ) for key, value in config.headers.items()}
        timeout = httpx2.Timeout(config.timeout_seconds, read=max(config.timeout_seconds, 300.0))
        return streamable_http_client(
            config.url, http_client=create_mcp_http_client(headers=headers, timeout=timeout)
        )

    async def client(self) -> Client:
        """The live session, connecting first if there is none."""
        if self._client is not None and self._owner is not None and not self._owner.done():
            return self._client
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            await self._stop_owner()
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._closing = asyncio.Event()
            self._owner = asyncio.create_task(self._own(ready, self._closing), name=f"mcp:{self.name}")
            try:
                self._client = await asyncio.wait_for(ready, self.config.connect_timeout_seconds)
            except TimeoutError:
                await self._stop_owner()
                raise ServerUnavailable(f"MCP server {self.name!r} did not answer in time") from None
            except (OSError, ServerUnavailable) as err:
                await self._stop_owner()
                raise ServerUnavailable(f"MCP server {self.name!r} is unreachable: {err}") from err
            self.connects += 1
            log.info("mcp_connected", server=self.name, transport=self.config.transport, connects=self.connects)
            return self._client

    async def _own(self, ready: asyncio.Future[Client], closing: asyncio.Event) -> None:
        try:
            async with Client(self._target(), read_timeout_seconds=self.config.timeout_seconds) as client:
                if ready.done():
                    # The caller stopped waiting (connect timeout); nobody will use this session.
                    return
                ready.set_result(client)
                await closing.wait()
        except BaseException as err:  # the owner task is a task boundary: report, never lose it
            if not ready.done():
                ready.set_exception(ServerUnavailable(f"{type(err).__name__}: {err}"))
            elif not isinstance(err, asyncio.CancelledError):
                log.warning("mcp_connection_lost", server=self.name, error=repr(err))
            if isinstance(err, asyncio.CancelledError):
                raise

    async def _stop_owner(self) -> None:
        owner, self._owner, self._client = self._owner, None, None
        if owner is None or owner.done():
            return
        assert self._closing is not None
        self._closing.set()
        try:
            await asyncio.wait_for(owner, 5)
        except TimeoutError:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)

    def invalidate(self, client: Client) -> None:
        """Forget `client` after it failed, so the next call reconnects."""
        if self._client is client:
            self._client = None
            if self._closing is not None:
                self._closing.set()

    async def list_tools(self) -> list[Tool]:
        """Every tool the server offers (all pages)."""
        client = await self.client()
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools
        except Exception as err:
            self.invalidate(client)
            raise ServerUnavailable(f"MCP server {self.name!r}: listing tools failed: {err}") from err

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None
    ) -> CallToolResult:
        """Call one tool within the server's concurrency and rate limits.

        Raises `CircuitOpen` or `NotSent` when the request never left (safe to resend), and
        `ServerUnavailable` when the connection broke after sending (it is reopened next time).
        """
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            probe = self.breaker.check()
            try:
                return await self._send(tool, arguments, meta)
            except asyncio.CancelledError:
                if probe:
                    self.breaker.release()
                raise

    async def _send(self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None) -> CallToolResult:
        try:
            client = await self.client()
        except ServerUnavailable as err:
            self._failed()
            raise NotSent(str(err)) from err
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            result = await client.call_tool(tool, arguments, meta=meta)  # type: ignore[arg-type]
        except TimeoutError as err:
            self._failed()
            self.invalidate(client)
            raise ServerUnavailable(f"MCP server {self.name!r}: {tool} timed out") from err
        except Exception as err:
            if _is_protocol_error(err):
                self.breaker.success()
                raise
            self._failed()
            self.invalidate(client)
            raise ServerUnavailable(f"MCP server {self.name!r}: {tool} failed: {err!r}") from err
        finally:
            self.in_flight -= 1
        self.breaker.success()
        return result

    def _failed(self) -> None:
        if self.breaker.failure():
            log.warning("mcp_circuit_opened", server=self.name, failures=self.breaker.threshold,
                        cooldown_seconds=self.breaker.cooldown)

    async def close(self) -> None:
        """End the session (and the stdio child process)."""
        async with self._lock:
            await self._stop_owner()


def _is_protocol_error(err: Exception) -> bool:
    """An error answer from a live server, as opposed to a broken or expired connection."""
    if not isinstance(err, MCPError) or err.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
        return False
    # An unknown session id (the server restarted) means: open a new session.
    return not (err.code == INVALID_REQUEST and "session" in err.error.message.lower())


class McpPool:
    """Connections to every registered server, shared by all activities of one worker."""

    def __init__(self, servers: dict[str, ServerConfig], environ: Mapping[str, str] | None = None) -> None:
        self.servers = servers
        env = dict(os.environ if environ is None else environ)
        self._connections = {name: Connection(name, config, env) for name, config in servers.items()}

    def connection(self, name: str) -> Connection:
        """The connection to server `name`."""
        return self._connections[name]

    async def close(self) -> None:
        """Close every session and stop every stdio child."""
        await asyncio.gather(*(conn.close() for conn in self._connections.values()), return_exceptions=True)
