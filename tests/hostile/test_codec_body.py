"""A codec-server token holder cannot make it spend seconds of CPU with one big body.

The attack (issue 19, "also seen"): one 8 MB body (then the default limit) of tiny payloads cost
the server about 10 s of CPU. Here a real `airlock codec-server` with its default limits gets,
from a holder of the token, a 3 MB body (refused, 413, before it is read whole) and a 1.8 MB body
of 600,000 empty payloads (refused, 413, before any payload is built); an ordinary request of
1000 payloads is still answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.support.airlock_cli import AIRLOCK
from tests.support.codec_keys import TOKEN, write_keys

pytestmark = pytest.mark.integration  # starts the codec server

READY = re.compile(r"codec server on (http://[^\s]+) ")
DEADLINE_S = 30.0


async def test_a_big_body_or_a_flood_of_payloads_is_refused_before_the_work(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    environ.update({"AIRLOCK_CODEC_KEYS_FILE": str(keys.keys_file), "AIRLOCK_LOG_FORMAT": "json"})
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        *("codec-server", "--port", "0", "--token-file", str(keys.token_file)),
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        banner = (await asyncio.wait_for(proc.stderr.readline(), DEADLINE_S)).decode()
        found = READY.search(banner)
        assert found, banner
        url = found.group(1)
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        big = b'{"payloads": [{"data": "' + b"A" * 3_000_000 + b'"}]}'
        flood = b'{"payloads": [' + b",".join([b"{}"] * 600_000) + b"]}"
        data = base64.b64encode(b'"hello"').decode()
        ordinary = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": data}]}
        async with httpx.AsyncClient(base_url=url, timeout=DEADLINE_S) as http:
            too_big = await http.post("/decode", content=big, headers=auth)
            too_many = await http.post("/decode", content=flood, headers=auth)
            many = await http.post("/decode", json={"payloads": ordinary["payloads"] * 1000}, headers=auth)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), DEADLINE_S)
    assert len(big) < 8_000_000 and len(flood) < 2_097_152  # both passed the old 8 MB limit
    assert too_big.status_code == 413, too_big.text
    assert too_many.status_code == 413, too_many.text
    assert json.loads(too_many.text)["error"] == "more than 1000 payloads in one request"
    assert many.status_code == 200, many.text
    assert len(many.json()["payloads"]) == 1000
