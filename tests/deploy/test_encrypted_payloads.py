"""Encrypted payloads end to end: a worker with the codec on runs the support agent through an
approval; the history, read without the keys (a plain client, the `temporal` CLI), shows neither
the prompt nor the tool's result; `airlock codec-server` (a real subprocess on loopback) and
`temporal workflow show --codec-endpoint` read them back; `airlock pending`/`show` work with the
keys. Hostile input: forged encrypted signals and inputs never stall a run, and the codec server
answers malformed, huge, badly encoded or unauthenticated requests with a 4xx, never a key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper
from console.inbox.runs import Runs
from console.inbox.server import bind, serve
from runtime import devserver
from runtime.build import replayer
from runtime.codec import ENCODING, KEY_ID, EncryptionCodec, Keyring, new_key
from runtime.connection import connect
from runtime.converter import data_converter
from runtime.settings import Settings
from tests.support.airlock_cli import AIRLOCK, address_of, airlock
from tests.support.codec_keys import TOKEN, Keys, write_keys
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, history_payloads
from tests.support.project import make_project
from tests.support.runs import decision, failure_of, pending_of, temporal_cli, wait_pending, workflow_id
from tests.support.worker_process import REPO_ROOT, project_env, worker_process
from worker import build_activities, running_worker
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # starts the codec server and CLI processes

PROMPT = "Close T-1 please; the customer's passphrase is heron-4417-violet."
# Only the tickets server knows this line of T-1's body: it reaches the history as a tool result.
TOOL_RESULT = "KeyError: 'reset_token' in the session middleware"
SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"message": "Closed T-1."},
    ]
}
WEB_UI = "http://localhost:8233"
MAX_BODY = 65_536
READY_S = 30.0


@dataclass
class CodecServer:
    """A running `airlock codec-server` and its address."""

    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]


@contextlib.asynccontextmanager
async def codec_server(keys: Keys, *args: str) -> AsyncIterator[CodecServer]:
    """Start `airlock codec-server --port 0 ARGS`; wait for its address line; stop it by its pid.

    At the end: nothing was written to stdout, and the token appears in none of its log lines.
    """
    env = {
        "AIRLOCK_CODEC_KEYS_FILE": str(keys.keys_file),
        "AIRLOCK_CODEC_SERVER_MAX_BODY_BYTES": str(MAX_BODY),
        "AIRLOCK_LOG_FORMAT": "json",
    }
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        "codec-server",
        "--port",
        "0",
        "--token-file",
        str(keys.token_file),
        *args,
        env={**environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []

    async def address() -> str:
        assert proc.stderr is not None
        while line := (await proc.stderr.readline()).decode(errors="replace"):
            lines.append(line)
            if found := re.search(r"codec server on (http://\S+)", line):
                return found.group(1)
        raise RuntimeError("codec server exited before it listened:\n" + "".join(lines))

    async def drain() -> None:  # a full pipe would block the server's logging
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode(errors="replace"))

    drainer: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(address(), READY_S)
        drainer = asyncio.create_task(drain())
        yield CodecServer(proc, url, lines)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drainer is not None:
            await drainer
    assert await proc.stdout.read() == b""
    assert proc.returncode == 0, "".join(lines)
    logged = "".join(lines)
    assert TOKEN not in logged and all(key not in logged for key in keys.keys.values())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The module's keys and token."""
    return write_keys(tmp_path_factory.mktemp("codec"))


@pytest.fixture(scope="module")
async def server(keys: Keys) -> AsyncIterator[CodecServer]:
    """One codec server for the module (the Web UI origin allowed), stopped at the end."""
    async with codec_server(keys, "--web-origin", WEB_UI) as running:
        yield running


def auth(token: str = TOKEN) -> dict[str, str]:
    """The header a caller authenticates with."""
    return {"Authorization": f"Bearer {token}"}


def history_payload_json(raw: str) -> list[dict[str, Any]]:
    """Every payload of a history's JSON in protobuf JSON form, as the Web UI sends them."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and isinstance(node.get("metadata"), dict):
                found.append({"metadata": node["metadata"], "data": node["data"]})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return found


def readable(raw_history: str) -> str:
    """A history's JSON plus every payload in it decoded from base64: all a reader without keys sees."""
    return "\n".join([raw_history, *(data.decode(errors="replace") for data in history_payloads(raw_history))])


def texts(answer: dict[str, Any]) -> str:
    """The decoded payload data of a codec-server answer, joined."""
    return "\n".join(base64.b64decode(p.get("data", "")).decode(errors="replace") for p in answer["payloads"])


async def start(client: Client, task_queue: str, prefix: str, text: str = PROMPT) -> Any:
    """Start a support run on `task_queue`."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input=text, requester="carol"),
        id=workflow_id(prefix),
        task_queue=task_queue,
        result_type=AgentResult,
    )


async def inbox_page(client: Client, settings: Settings, path: str, **params: str) -> httpx.Response:
    """One page of the inbox, served on a free loopback port for `client`, as alice behind the proxy."""
    sock = bind(settings.model_copy(update={"inbox_port": 0}))
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    gatekeeper = Gatekeeper(identity_header="X-Forwarded-User", trusted_proxies=["127.0.0.1"], allowed_hosts=[host])
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(build_app(Runs(client, None), gatekeeper), settings, stop, sock))
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as http:
            return await http.get(path, params=params, headers={"X-Forwarded-User": "alice"})
    finally:
        stop.set()
        await serving


# --- the run, read with and without the keys ---------------------------------------------------


async def test_an_encrypted_run_is_unreadable_without_the_keys_and_readable_through_the_codec_server(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
    server: CodecServer,
) -> None:
    address = address_of(temporal_env)
    project = make_project(tmp_path, script=SCRIPT, **keys.settings(temporal_address=address))
    encrypted = await connect(project.settings)  # the worker's own door: the codec comes from settings
    assert encrypted.data_converter.payload_codec is not None
    cli_env = {"AIRLOCK_CODEC_KEYS_FILE": str(keys.keys_file)}
    activities = build_activities(project.settings, environ=project.environ)
    async with running_worker(encrypted, project.settings, activities):
        handle = await start(encrypted, project.settings.task_queue, "codec")
        [pending] = await wait_pending(handle)
        assert pending["tool"] == "close_ticket"

        # The operator CLI reads the run through the same converter.
        listed = await airlock("--address", address, "pending", "-o", "json", home=tmp_path, env=cli_env)
        assert handle.id in {call["workflow_id"] for call in listed.json()}, listed.describe()
        shown = await airlock("--address", address, "show", handle.id, "-o", "json", home=tmp_path, env=cli_env)
        assert shown.json()["pending"][0]["arguments"] == {"ticket_id": "T-1"}, shown.describe()
        # Without the keys it says which key it lacks, and neither crashes nor prints a key.
        blind = await airlock("--address", address, "show", handle.id, home=tmp_path)
        assert blind.code == 1 and "key id 'k2'" in blind.err and "Traceback" not in blind.err, blind.describe()
        assert all(key not in blind.err + blind.out for key in keys.keys.values())

        # So does the inbox, whose client comes from the same door.
        page = await inbox_page(encrypted, project.settings, "/run", wf=handle.id)
        # (its state and audit come from the run's queries, whose answers are sealed)
        assert page.status_code == 200, page.text
        assert "awaiting_approval" in page.text and "tickets.close_ticket" in page.text, page.text

        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
    assert result.output == "Closed T-1."

    # Without the keys: a plain client's history, every payload base64-decoded, and the `temporal` CLI.
    raw = (await temporal_env.client.get_workflow_handle(handle.id).fetch_history()).to_json()
    cli_raw = await temporal_cli(temporal_env, "workflow", "show", "-w", handle.id, "-o", "json")
    for seen in (readable(raw), readable(cli_raw)):
        assert PROMPT not in seen and "heron-4417" not in seen
        assert TOOL_RESULT not in seen and "reset_token" not in seen
    sealed = history_payload_json(raw)
    unsealed = [p for p in sealed if base64.b64decode(p["metadata"]["encoding"]) != ENCODING]
    # Only what Temporal itself reads stays plain: search attributes (typed, indexed by the server)
    # Temporal core's own local-activity bookkeeping in the marker (ids, attempt, times), and patch markers.
    for payload in unsealed:
        value = json.loads(base64.b64decode(payload["data"]))
        if "type" in payload["metadata"]:
            # TemporalChangeVersion lists the run's patch ids (names of code changes, not run data).
            patch_ids = isinstance(value, list) and all(re.fullmatch(r"[a-z0-9-]{1,63}", v) for v in value)
            assert patch_ids or value in ("support", "starting", "running", "awaiting_approval", "completed"), payload
        elif set(value) == {"id", "deprecated"}:
            # A `workflow.patched` marker: the patch id names a change in the code, not run data.
            assert isinstance(value["id"], str) and len(value["id"]) < 64, payload
        else:
            assert {"seq", "attempt", "activity_id", "activity_type"} <= set(value), payload
    assert len(unsealed) < len(sealed)
    history = await encrypted.get_workflow_handle(handle.id).fetch_history()
    assert_no_task_failures(history)
    # The recorded history replays in the checking sandbox, given the keys.
    await replayer(data_converter(project.settings)).replay_workflow(history)

    # The codec server, over HTTP, with the history's own payloads.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post("/decode", json={"payloads": sealed}, headers={**auth(), "X-Namespace": "default"})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["payloads"]) == len(sealed)
        opened = texts(answer.json())
        assert PROMPT in opened and TOOL_RESULT in opened
        # The CLI's endpoint templating puts the namespace in the path.
        templated = await http.post("/default/decode", json={"payloads": sealed[:1]}, headers=auth())
        assert templated.status_code == 200 and texts(templated.json()) in opened
        for headers in ({}, auth("wrong-token-of-the-right-length"), {"Authorization": TOKEN}):
            refused = await http.post("/decode", json={"payloads": sealed}, headers=headers)
            assert refused.status_code == 401, refused.text
            assert PROMPT not in refused.text and refused.headers["WWW-Authenticate"].startswith("Bearer")

    # `temporal workflow show` with the codec server decodes the same history.
    decoded = await temporal_cli(
        temporal_env,
        "workflow",
        "show",
        "-w",
        handle.id,
        "--codec-endpoint",
        server.url,
        "--codec-auth",
        f"Bearer {TOKEN}",
        "-o",
        "json",
    )
    assert "heron-4417" in readable(decoded) and "reset_token" in readable(decoded)
    # The same from the environment (what docs/deploy.md recommends: the token stays off the process list).
    proc = await asyncio.create_subprocess_exec(
        str(devserver.temporal_binary()),
        "workflow",
        "show",
        "-w",
        handle.id,
        "--address",
        address,
        "-o",
        "json",
        env={**os.environ, "TEMPORAL_CODEC_ENDPOINT": server.url, "TEMPORAL_CODEC_AUTH": f"Bearer {TOKEN}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "heron-4417" in readable(out.decode())


# --- hostile senders against an encrypted worker ------------------------------------------------


async def test_forged_encrypted_signals_and_inputs_are_refused_and_never_stall_a_run(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
) -> None:
    project = make_project(tmp_path, script=SCRIPT, **keys.settings(temporal_address=address_of(temporal_env)))
    encrypted = await connect(project.settings)
    plain = temporal_env.client  # a sender without the keys: what it sends reaches the worker as it is
    stranger = EncryptionCodec(Keyring({"k2": base64.b64decode(new_key())}))  # the right id, the wrong key
    [wrong_key] = await stranger.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'{"call_id": "x"}')])
    forgeries = [
        wrong_key,
        Payload(metadata={"encoding": ENCODING, KEY_ID: b"nobody"}, data=b"\x00" * 64),
        Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"short"),
        Payload(metadata={"encoding": ENCODING}, data=b'{"call_id": "call-support-2"}'),
    ]
    activities = build_activities(project.settings, environ=project.environ)
    async with running_worker(encrypted, project.settings, activities):
        handle = await start(encrypted, project.settings.task_queue, "codec-forged")
        [pending] = await wait_pending(handle)
        target = plain.get_workflow_handle(handle.id)
        for forged in forgeries:
            await target.signal("approve", RawValue(forged))

        async def refused() -> list[dict[str, Any]] | None:
            audit = await handle.query("audit", result_type=list)
            entries = [e for e in audit if e["event"] == "refused"]
            return entries if len(entries) >= len(forgeries) else None

        entries = await wait_for(refused, what="the forged signals audited as refused")
        assert len(entries) == len(forgeries)
        assert all("encrypted with key id" in (e["reason"] or "") for e in entries), entries
        assert await pending_of(handle) == [pending]  # nothing was decided by them
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
        assert result.output == "Closed T-1."

        # A forged workflow input fails that run with a typed error instead of a task-retry loop.
        forged_run = await plain.start_workflow(
            "AgentWorkflow",
            RawValue(forgeries[1]),
            id=workflow_id("codec-input"),
            task_queue=project.settings.task_queue,
        )
        failure = await failure_of(encrypted.get_workflow_handle(forged_run.id))
    assert failure.type == "InvalidInputError"
    assert "encrypted with key id 'nobody', which this worker cannot decrypt" in failure.message
    for run_id in (handle.id, forged_run.id):
        history = await encrypted.get_workflow_handle(run_id).fetch_history()
        assert_no_task_failures(history)
        await replayer(data_converter(project.settings)).replay_workflow(history)


# --- the codec server against hostile requests -------------------------------------------------


async def test_the_codec_server_answers_malformed_huge_and_foreign_requests_with_a_4xx(
    server: CodecServer,
    keys: Keys,
) -> None:
    codec = EncryptionCodec(Keyring({k: base64.b64decode(v) for k, v in keys.keys.items()}))
    [sealed] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"fine"')])
    [foreign] = await EncryptionCodec(Keyring({"k9": base64.b64decode(new_key())})).encode([sealed])
    tampered = bytearray(sealed.data)
    tampered[-1] ^= 1
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    meta = {"encoding": b64(ENCODING), KEY_ID: b64(b"k2")}
    cases: list[tuple[str, bytes | str, int, str]] = [
        ("not JSON", b"{payloads: nope", 400, "not JSON"),
        ("deep", "[" * 60_000, 400, "not JSON"),
        ("not an object", b"[1, 2]", 400, "JSON object"),
        ("payloads not a list", b'{"payloads": 5}', 400, "JSON object"),
        ("payload not an object", b'{"payloads": ["x"]}', 400, "payloads[0] is not an object"),
        (
            "bad base64 data",
            json.dumps({"payloads": [{"metadata": meta, "data": "!!!not base64"}]}),
            400,
            "payloads[0].data is not base64",
        ),
        (
            "bad base64 metadata",
            json.dumps({"payloads": [{"metadata": {"encoding": "%%%"}, "data": ""}]}),
            400,
            "payloads[0].metadata.encoding is not base64",
        ),
        ("unknown key id", json.dumps({"payloads": [render(foreign)]}), 400, "unknown key id 'k9'"),
        (
            "tampered",
            json.dumps({"payloads": [{"metadata": meta, "data": b64(bytes(tampered))}]}),
            400,
            "does not open",
        ),
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for name, body, status, said in cases:
            answer = await http.post("/decode", content=body, headers={**auth(), "Content-Type": "application/json"})
            assert answer.status_code == status, (name, answer.status_code, answer.text)
            assert said in answer.json()["error"], (name, answer.text)
            assert all(key not in answer.text for key in keys.keys.values()), name

        huge = b'{"payloads": [{"data": "' + b"A" * (MAX_BODY + 10) + b'"}]}'
        assert (await http.post("/decode", content=huge, headers=auth())).status_code == 413

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: cut off while streaming
            for _ in range(MAX_BODY // 1024 + 2):
                yield b"A" * 1024

        assert (await http.post("/decode", content=streamed(), headers=auth())).status_code == 413
        assert (await http.get("/decode", headers=auth())).status_code == 405
        assert (await http.post("/decode", content=huge)).status_code == 401  # no token: not even read

        # Payloads that are not encrypted come back unchanged; /encode seals with the first key.
        unencrypted = {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'"hello"')}
        passed = await http.post("/decode", json={"payloads": [unencrypted]}, headers=auth())
        assert passed.status_code == 200 and passed.json()["payloads"] == [unencrypted]
        encoded = await http.post("/encode", json={"payloads": [unencrypted]}, headers=auth())
        [sealed_json] = encoded.json()["payloads"]
        assert base64.b64decode(sealed_json["metadata"][KEY_ID]) == b"k2" and "hello" not in texts(encoded.json())
        back = await http.post("/decode", json=encoded.json(), headers=auth())
        assert back.json()["payloads"] == [unencrypted]
        assert (await http.post("/decode", json={"payloads": []}, headers=auth())).json() == {"payloads": []}
    assert server.proc.returncode is None  # still serving after all of it

    async def logged_refusal() -> bool:
        return any('"status": 401' in line or '"status":401' in line for line in server.lines)

    await wait_for(logged_refusal, what="a refused request in the codec server's log")


def render(payload: Payload) -> dict[str, Any]:
    """`payload` in protobuf JSON."""
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def test_cors_lets_the_configured_web_ui_in_and_no_other_origin(server: CodecServer) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,authorization-extras,content-type,x-namespace",
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        allowed = await http.options("/decode", headers={"Origin": WEB_UI, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == WEB_UI
        assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
        assert {"authorization", "authorization-extras", "x-namespace", "content-type"} <= {
            h.strip().lower() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
        other = await http.options("/decode", headers={"Origin": "http://evil.example", **preflight})
        assert other.status_code >= 400 and "Access-Control-Allow-Origin" not in other.headers
        # The real request: the Web UI may read the answer (a 401 too), another page may not.
        for origin, readable_by_page in ((WEB_UI, True), ("http://evil.example", False)):
            answer = await http.post("/decode", json={"payloads": []}, headers={"Origin": origin, **auth()})
            assert answer.status_code == 200
            assert ("Access-Control-Allow-Origin" in answer.headers) is readable_by_page
        unauthenticated = await http.post("/decode", json={"payloads": []}, headers={"Origin": WEB_UI})
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["Access-Control-Allow-Origin"] == WEB_UI


@pytest.mark.parametrize(
    ("setup", "args", "said"),
    [
        ("no token", ("codec-server", "--port", "0"), "bearer token"),
        ("open token file", ("codec-server", "--port", "0", "--token-file", "{token_0644}"), "readable by others"),
        ("wildcard origin", ("codec-server", "--port", "0", "--token-file", "{token}", "--web-origin", "*"), "`*`"),
        ("no keys", ("codec-server", "--port", "0", "--token-file", "{token}"), "AIRLOCK_CODEC_KEYS_FILE"),
    ],
)
async def test_the_codec_server_will_not_start_open(
    tmp_path: Path,
    keys: Keys,
    setup: str,
    args: tuple[str, ...],
    said: str,
) -> None:
    loose = tmp_path / "token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    argv = [a.format(token=keys.token_file, token_0644=loose) for a in args]
    env = {} if setup == "no keys" else {"AIRLOCK_CODEC_KEYS_FILE": str(keys.keys_file)}
    ran = await airlock(*argv, home=tmp_path, env=env)
    assert ran.code == 1, ran.describe()
    assert said in ran.err and TOKEN not in ran.err, ran.describe()


def test_settings_read_the_codec_server_origins_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_CODEC_SERVER_ORIGINS", "https://ui.example.com, http://localhost:8233")
    assert Settings().codec_server_origins == ["https://ui.example.com", "http://localhost:8233"]


# --- the worker process ------------------------------------------------------------------------


async def test_the_worker_process_encrypts_when_its_settings_say_so(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
) -> None:
    address = address_of(temporal_env)
    project = make_project(
        tmp_path, script={"support": [{"message": "Nothing to do."}]}, **keys.settings(temporal_address=address)
    )
    async with worker_process(project_env(project, address, AIRLOCK_CODEC_KEYS_FILE=str(keys.keys_file))) as worker:
        assert any('"payloads encrypted"' in line for line in worker.lines), worker.lines
        encrypted = await connect(project.settings)
        handle = await start(encrypted, project.settings.task_queue, "codec-process")
        assert (await handle.result()).output == "Nothing to do."
    raw = (await temporal_env.client.get_workflow_handle(handle.id).fetch_history()).to_json()
    assert "heron-4417" not in readable(raw) and "Nothing to do." not in readable(raw)


async def test_a_worker_with_a_keys_file_others_can_read_stops_naming_it(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
) -> None:
    loose = tmp_path / "keys.toml"
    loose.write_text(keys.keys_file.read_text())
    loose.chmod(0o640)
    project = make_project(tmp_path, script={"support": [{"message": "never"}]})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        env=project_env(project, address_of(temporal_env), AIRLOCK_CODEC_KEYS_FILE=str(loose)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()
    assert f"{loose} is readable by others (mode 0640)" in err.decode()
    assert all(key not in err.decode() for key in keys.keys.values())


async def test_turning_encryption_on_under_a_run_in_flight_lets_it_finish_and_replay(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    keys: Keys,
) -> None:
    plain_project = make_project(tmp_path, script=SCRIPT)
    settings = plain_project.settings.model_copy(
        update={"codec_keys_file": keys.keys_file, "temporal_address": address_of(temporal_env)}
    )
    plain = temporal_env.client
    activities = build_activities(plain_project.settings, environ=plain_project.environ)
    async with running_worker(plain, plain_project.settings, activities):
        handle = await start(plain, settings.task_queue, "codec-upgrade")
        [pending] = await wait_pending(handle)
    # The same queue, now served by a worker with the keys: the plain half of the history still reads.
    encrypted = await connect(settings)
    activities = build_activities(settings, environ=plain_project.environ)
    async with running_worker(encrypted, settings, activities):
        ours = encrypted.get_workflow_handle(handle.id, result_type=AgentResult)
        assert await pending_of(ours) == [pending]
        await ours.signal("approve", decision(pending, "alice"))
        assert (await ours.result()).output == "Closed T-1."
    history = await ours.fetch_history()
    assert_no_task_failures(history)
    payloads = history_payload_json(history.to_json())
    encodings = {base64.b64decode(p["metadata"]["encoding"]) for p in payloads}
    assert ENCODING in encodings and b"json/plain" in encodings  # both halves are there
    await replayer(data_converter(settings)).replay_workflow(history)
