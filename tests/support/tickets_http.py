"""HTTP MCP servers as real subprocesses on loopback: the bundled tickets server, or a test's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The bearer token the tickets server requires over HTTP. A constant, so a registry can be written
# before its server starts and a restarted server on the same port takes the same token.
TICKETS_TOKEN = "tickets-test-token-6c2f9e01d8"
# The `servers.toml` line that sends it, expanded on the worker from its TICKETS_TOKEN variable.
AUTH_HEADER = 'headers = { Authorization = "Bearer ${TICKETS_TOKEN}" }'

READY_LINE = re.compile(r"tickets MCP server listening on (http://[^\s\"]+)")
STARTUP_DEADLINE_S = 15.0
SHUTDOWN_DEADLINE_S = 10.0


@dataclass
class HttpServer:
    """A tickets server subprocess serving streamable HTTP."""

    url: str
    db_path: Path
    pid: int
    stderr_lines: list[str] = field(default_factory=list)
    token: str | None = TICKETS_TOKEN

    @property
    def headers(self) -> dict[str, str]:
        """The request headers a client needs: the bearer token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


async def _wait_until_ready(stream: asyncio.StreamReader, lines: list[str], ready: re.Pattern[str]) -> str:
    while line := (await stream.readline()).decode(errors="replace"):
        lines.append(line)
        if match := ready.search(line):
            return match.group(1)
    raise RuntimeError("server exited before it was ready:\n" + "".join(lines))


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    # Keeps reading so a chatty server never blocks on a full stderr pipe.
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def http_server_process(
    args: list[str],
    env: dict[str, str],
    ready: re.Pattern[str],
    *,
    prefix: tuple[str, ...] = (),
) -> AsyncIterator[tuple[str, int, list[str]]]:
    """Run `python *args` until its stderr matches `ready`; yield (URL, pid, stderr lines); stop it."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_wait_until_ready(proc.stderr, lines, ready), STARTUP_DEADLINE_S)
        drain = asyncio.create_task(_drain(proc.stderr, lines))
        yield url, proc.pid, lines
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), SHUTDOWN_DEADLINE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await drain


@contextlib.asynccontextmanager
async def tickets_http_server(
    db_path: Path,
    port: int = 0,
    *,
    token: str | None = TICKETS_TOKEN,
    host: str = "127.0.0.1",
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> AsyncIterator[HttpServer]:
    """Start `python -m mcp_servers.tickets --http` on `host` (loopback); stop it by pid afterwards.

    With port 0 the server binds a free port itself and reports it, so no other process can
    take the port between choosing and binding it. `token` is its TICKETS_TOKEN (None: unset, so
    `extra` must say --insecure-no-auth); `prefix` runs it under another command (`unshare -rn`).
    """
    args = ["-m", "mcp_servers.tickets", "--http", "--host", host, "--port", str(port), *extra]
    environ = {k: v for k, v in os.environ.items() if k != "TICKETS_TOKEN"}
    environ.update({"TICKETS_DB": str(db_path), **(env or {})})
    if token is not None:
        environ["TICKETS_TOKEN"] = token
    async with http_server_process(args, environ, READY_LINE, prefix=prefix) as (url, pid, lines):
        yield HttpServer(url=url, db_path=db_path, pid=pid, stderr_lines=lines, token=token)
