"""A separately started `temporal server start-dev`, as an operator starts one: no Airlock flags.

Unlike `runtime.devserver.start`, nothing registers Airlock's search attributes on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client

from runtime import devserver

READY_DEADLINE_S = 30.0


@dataclass
class PlainServer:
    """The server's address, pid and a client of it."""

    address: str
    pid: int
    client: Client


@contextlib.asynccontextmanager
async def plain_dev_server(*extra: str) -> AsyncIterator[PlainServer]:
    """Run `temporal server start-dev` on free loopback ports until the block ends; stop it by pid."""
    port = devserver.free_port()
    proc = await asyncio.create_subprocess_exec(
        str(devserver.temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--http-port",
        str(devserver.free_port()),
        "--metrics-port",
        str(devserver.free_port()),
        "--log-level",
        "error",
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        client = await _connected(address, proc)
        yield PlainServer(address, proc.pid, client)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _connected(address: str, proc: asyncio.subprocess.Process) -> Client:
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"temporal server start-dev exited with {proc.returncode}")
        try:
            return await Client.connect(address, data_converter=devserver.data_converter())
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
