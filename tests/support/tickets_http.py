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
    args: list[str], env: dict[str, str], ready: re.Pattern[str]
) -> AsyncIterator[tuple[str, int, list[str]]]:
    """Run `python *args` until its stderr matches `ready`; yield (URL, pid, stderr lines); stop it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args,
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
async def tickets_http_server(db_path: Path, port: int = 0) -> AsyncIterator[HttpServer]:
    """Start `python -m mcp_servers.tickets --http` on 127.0.0.1; stop it by pid afterwards.

    With port 0 the server binds a free port itself and reports it, so no other process can
    take the port between choosing and binding it.
    """
    args = ["-m", "mcp_servers.tickets", "--http", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "TICKETS_DB": str(db_path)}
    async with http_server_process(args, env, READY_LINE) as (url, pid, lines):
        yield HttpServer(url=url, db_path=db_path, pid=pid, stderr_lines=lines)
