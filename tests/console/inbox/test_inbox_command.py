"""`airlock inbox` as an operator runs it: served on loopback, stdout left empty, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import httpx
from temporalio.testing import WorkflowEnvironment

from runtime.devserver import free_port
from tests.support.airlock_cli import AIRLOCK, address_of
from tests.support.conditions import wait_for

STARTUP_DEADLINE_S = 30.0


async def test_the_inbox_command_serves_loopback_logs_to_stderr_and_stops_on_sigterm(
    temporal_env: WorkflowEnvironment,
) -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    environ.update(
        {
            "AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env),
            "AIRLOCK_INBOX_TRUSTED_PROXIES": "127.0.0.1",
            "AIRLOCK_LOG_FORMAT": "json",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        "inbox",
        "--port",
        str(port),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        banner = (await asyncio.wait_for(proc.stderr.readline(), STARTUP_DEADLINE_S)).decode()
        assert banner == f"airlock: inbox on http://localhost:{port}\n"
        url = f"http://localhost:{port}/"

        async def answering() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    await http.get(url)
                return True
            except httpx.TransportError:
                return False

        await wait_for(answering, timeout=STARTUP_DEADLINE_S, what="the inbox to answer")
        async with httpx.AsyncClient() as http:
            page = await http.get(url, headers={"X-Forwarded-User": "alice"})
            stranger = await http.get(url)
        assert page.status_code == 200 and "alice" in page.text
        assert stranger.status_code in (401, 403)  # no identity from the proxy: nothing shown
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), STARTUP_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out == b""  # stdout is for what a command prints; the inbox prints nothing there
    for line in err.decode().splitlines():
        if line.strip():
            json.loads(line)  # every log line is one JSON object
