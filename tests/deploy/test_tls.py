"""TLS and mTLS to Temporal: a real worker process and the `airlock` CLI through a TLS frontend.

The bundled `temporal server start-dev` has no TLS options (CLI 1.9.1: its frontend config is built
in code, and dynamic config cannot reach TLS), so the TLS frontend here is a TLS-terminating proxy
on loopback (`tests/support/tls_proxy.py`) in front of the session's dev server. It does the real
handshake with Python's `ssl`, requires a client certificate where a test says so, and sends the
alerts a real server sends. The certificates are made in the test: a CA, a server certificate for
127.0.0.1 and localhost, and client certificates.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from mcp_servers.tomlfiles import ConfigError
from runtime import connection
from runtime.connection import connect
from runtime.settings import Settings
from runtime.tls import client_tls, refusal_hint
from tests.support.airlock_cli import address_of, airlock
from tests.support.certs import Authority, Issued
from tests.support.conditions import condition, wait_for
from tests.support.histories import assert_replays
from tests.support.project import make_project
from tests.support.runs import wait_pending, workflow_id
from tests.support.tls_proxy import tls_proxy
from tests.support.worker_process import REPO_ROOT, project_env, worker_process
from workflows.payloads import AgentResult

pytestmark = pytest.mark.integration  # starts TLS proxies and worker processes

EXIT_DEADLINE_S = 60.0

SCRIPT = {
    "support": [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}},
        {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1", "resolution": "fixed"}}},
        {"message": "Closed T-1."},
    ]
}


@dataclass(frozen=True)
class Pki:
    """The test's certificates: the server's CA and identity, a client of that CA, and strangers."""

    ca: Authority
    server: Issued
    client: Issued
    other_ca: Authority
    stranger: Issued
    named_server: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates made for this module, in a temporary directory."""
    root = tmp_path_factory.mktemp("pki")
    ca, other = Authority.create(root, "airlock"), Authority.create(root, "other")
    return Pki(
        ca=ca,
        server=ca.server(root, "frontend", ["127.0.0.1", "localhost"]),
        client=ca.client(root, "worker"),
        other_ca=other,
        stranger=other.client(root, "stranger"),
        named_server=ca.server(root, "named-frontend", ["temporal.internal"]),
    )


def tls_env(ca: Path | None = None, client: Issued | None = None) -> dict[str, str]:
    """The `AIRLOCK_TEMPORAL_TLS_*` settings for a CA and a client certificate."""
    env = {"AIRLOCK_TEMPORAL_TLS": "true"}
    if ca is not None:
        env["AIRLOCK_TEMPORAL_TLS_CA"] = str(ca)
    if client is not None:
        env.update({"AIRLOCK_TEMPORAL_TLS_CERT": str(client.cert), "AIRLOCK_TEMPORAL_TLS_KEY": str(client.key)})
    return env


async def worker_until_exit(env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """Run `python worker.py` until it exits by itself; its exit status and its JSON log lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "worker.py"),
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), EXIT_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]


def configuration_error(lines: list[dict[str, Any]]) -> str:
    """The one `configuration error` a stopped worker logged."""
    [line] = [line for line in lines if line.get("event") == "configuration error"]
    return str(line["error"])


async def test_worker_and_cli_over_mtls_take_a_run_through_its_gate(
    temporal_env: WorkflowEnvironment,
    pki: Pki,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with tls_proxy(address_of(temporal_env), pki.server, client_ca=pki.ca.cert) as frontend:
        env = project_env(project, frontend.address, **tls_env(pki.ca.cert, pki.client))
        async with worker_process(env) as worker:
            settings = Settings(
                temporal_address=frontend.address,
                temporal_tls_ca=pki.ca.cert,
                temporal_tls_cert=pki.client.cert,
                temporal_tls_key=pki.client.key,
            )
            client = await connect(settings)
            handle = await client.start_workflow(
                "AgentWorkflow",
                {"agent": "support", "input": "Close T-1.", "requester": "carol"},
                id=workflow_id("mtls"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            [pending] = await wait_pending(handle)
            # The operator's CLI reads the same settings and goes through the same TLS frontend.
            cli_env = {k: v for k, v in env.items() if k.startswith("AIRLOCK_")}
            approved = await airlock(
                "approve",
                handle.id,
                pending["call_id"],
                "--sha256",
                pending["arguments_sha256"],
                "--as",
                "alice",
                home=tmp_path,
                env=cli_env,
            )
            assert approved.code == 0, approved.describe()
            result = await handle.result()
        assert not any('"configuration error"' in line for line in worker.lines)
    assert result.status == "completed" and result.output == "Closed T-1."
    assert count_writes(project.tickets_db, "close_ticket") == 1
    # Worker, test client and CLI each completed a handshake; nothing was refused.
    assert frontend.refused == []
    assert frontend.handshakes.count("ok") >= 3
    # The history, read over plaintext from the dev server behind the frontend, replays.
    await assert_replays(temporal_env.client.get_workflow_handle(handle.id))


async def test_worker_without_a_client_certificate_is_refused_and_stops_naming_the_address(
    temporal_env: WorkflowEnvironment,
    pki: Pki,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with tls_proxy(address_of(temporal_env), pki.server, client_ca=pki.ca.cert) as frontend:
        code, lines = await worker_until_exit(project_env(project, frontend.address, **tls_env(pki.ca.cert)))
        await wait_for(condition(lambda: bool(frontend.refused)), what="the refused handshake")
    assert code == 2
    message = configuration_error(lines)
    assert f"cannot reach Temporal at {frontend.address} over TLS" in message
    # The server's alert, or (a race inside the HTTP/2 client) only the closed connection: either
    # way the message says what to set.
    assert (
        "it requires a client certificate (mTLS): set AIRLOCK_TEMPORAL_TLS_CERT and AIRLOCK_TEMPORAL_TLS_KEY" in message
    )
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in frontend.refused[0]
    assert "ok" not in frontend.handshakes
    assert not any(line.get("event") == "worker ready" for line in lines)


async def test_worker_with_a_client_certificate_of_another_ca_is_refused(
    temporal_env: WorkflowEnvironment,
    pki: Pki,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with tls_proxy(address_of(temporal_env), pki.server, client_ca=pki.ca.cert) as frontend:
        code, lines = await worker_until_exit(
            project_env(project, frontend.address, **tls_env(pki.ca.cert, pki.stranger))
        )
        await wait_for(condition(lambda: bool(frontend.refused)), what="the refused handshake")
    assert code == 2
    message = configuration_error(lines)
    assert frontend.address in message
    assert "it does not trust the client certificate (AIRLOCK_TEMPORAL_TLS_CERT)" in message
    assert "CERTIFICATE_VERIFY_FAILED" in frontend.refused[0]


async def test_worker_that_trusts_another_ca_refuses_the_server(
    temporal_env: WorkflowEnvironment,
    pki: Pki,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    async with tls_proxy(address_of(temporal_env), pki.server, client_ca=pki.ca.cert) as frontend:
        code, lines = await worker_until_exit(
            project_env(project, frontend.address, **tls_env(pki.other_ca.cert, pki.client))
        )
        await wait_for(condition(lambda: bool(frontend.refused)), what="the refused handshake")
    assert code == 2
    message = configuration_error(lines)
    assert frontend.address in message
    assert f"not signed by AIRLOCK_TEMPORAL_TLS_CA={pki.other_ca.cert}" in message
    # The worker ended the handshake itself, telling the server why.
    assert "TLSV1_ALERT_UNKNOWN_CA" in frontend.refused[0]


async def test_server_name_override_and_the_hints_for_a_wrong_name_or_a_plaintext_peer(
    temporal_env: WorkflowEnvironment,
    pki: Pki,
) -> None:
    async with tls_proxy(address_of(temporal_env), pki.named_server) as frontend:
        # The certificate names temporal.internal only; the address is 127.0.0.1.
        named = Settings(
            temporal_address=frontend.address, temporal_tls_ca=pki.ca.cert, temporal_tls_server_name="temporal.internal"
        )
        client = await connect(named)
        assert (await client.workflow_service.get_system_info(GetSystemInfoRequest())).server_version

        with pytest.raises(ConfigError) as wrong_name:
            await connect(Settings(temporal_address=frontend.address, temporal_tls_ca=pki.ca.cert))
        with pytest.raises(ConfigError) as plaintext_client:
            await connect(Settings(temporal_address=frontend.address))
    with pytest.raises(ConfigError) as plaintext_server:
        await connect(Settings(temporal_address=address_of(temporal_env), temporal_tls_ca=pki.ca.cert))

    assert "set AIRLOCK_TEMPORAL_TLS_SERVER_NAME to a name it carries" in str(wrong_name.value)
    assert "temporal.internal" in str(wrong_name.value), "the names the certificate carries are shown"
    assert "if it takes TLS only, set AIRLOCK_TEMPORAL_TLS=true" in str(plaintext_client.value)
    assert f"{address_of(temporal_env)} over TLS" in str(plaintext_server.value)
    assert "The server does not speak TLS" in str(plaintext_server.value)


# --- settings mistakes stop before any dialling ------------------------------------------------


@pytest.mark.parametrize(("given", "missing"), [("cert", "KEY"), ("key", "CERT")])
def test_a_certificate_without_its_key_names_both_settings(pki: Pki, given: str, missing: str) -> None:
    path = pki.client.cert if given == "cert" else pki.client.key
    with pytest.raises(ConfigError) as refused:
        client_tls(Settings(**{f"temporal_tls_{given}": path}))
    message = str(refused.value)
    assert f"AIRLOCK_TEMPORAL_TLS_{given.upper()} is set but AIRLOCK_TEMPORAL_TLS_{missing} is not" in message
    assert "needs both AIRLOCK_TEMPORAL_TLS_CERT and AIRLOCK_TEMPORAL_TLS_KEY" in message


def test_a_missing_unreadable_or_foreign_file_is_named_with_its_setting(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError, match=f"AIRLOCK_TEMPORAL_TLS_CA={missing}: no such file"):
        client_tls(Settings(temporal_tls_ca=missing))
    with pytest.raises(ConfigError, match=f"AIRLOCK_TEMPORAL_TLS_KEY={tmp_path}: is a directory"):
        client_tls(Settings(temporal_tls_cert=pki.client.cert, temporal_tls_key=tmp_path))
    # A hostile or mistaken file: not PEM, or far too large to be one.
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ConfigError, match=f"AIRLOCK_TEMPORAL_TLS_CERT={garbage}: not a PEM file"):
        client_tls(Settings(temporal_tls_cert=garbage, temporal_tls_key=pki.client.key))
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * 2_000_000)
    with pytest.raises(ConfigError, match="larger than 1000000 bytes"):
        client_tls(Settings(temporal_tls_ca=huge))


def test_tls_is_on_when_anything_asks_for_it_and_off_otherwise(pki: Pki) -> None:
    assert client_tls(Settings()) is False
    # Temporal Cloud's API-key endpoints take TLS only: an API key alone turns it on.
    assert client_tls(Settings(temporal_api_key="cloud-key-for-a-test")) == TLSConfig()
    assert client_tls(Settings(temporal_tls=True)) == TLSConfig()
    assert client_tls(Settings(temporal_tls_server_name="t.internal")) == TLSConfig(domain="t.internal")
    mtls = client_tls(
        Settings(temporal_tls_ca=pki.ca.cert, temporal_tls_cert=pki.client.cert, temporal_tls_key=pki.client.key)
    )
    assert mtls == TLSConfig(
        server_root_ca_cert=pki.ca.cert.read_bytes(),
        client_cert=pki.client.cert.read_bytes(),
        client_private_key=pki.client.key.read_bytes(),
    )
    # Explicitly off: plaintext even with an API key (a local sidecar), but never with TLS files.
    assert client_tls(Settings(temporal_tls=False, temporal_api_key="cloud-key-for-a-test")) is False
    with pytest.raises(ConfigError, match="AIRLOCK_TEMPORAL_TLS=false, but AIRLOCK_TEMPORAL_TLS_CA is set"):
        client_tls(Settings(temporal_tls=False, temporal_tls_ca=pki.ca.cert))


async def test_worker_with_half_a_client_certificate_stops_before_dialling(pki: Pki, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    env = project_env(project, "127.0.0.1:9", AIRLOCK_TEMPORAL_TLS_CERT=str(pki.client.cert))
    code, lines = await worker_until_exit(env)
    assert code == 2
    message = configuration_error(lines)
    assert "AIRLOCK_TEMPORAL_TLS_CERT is set but AIRLOCK_TEMPORAL_TLS_KEY is not" in message
    assert "cannot reach" not in message, "stopped on the settings, not on the connection"


# What Temporal's core reported in these tests' runs, word for word (the closed connection is the
# HTTP/2 client's race: a refusal that reaches it without the server's alert).
CLOSED = (
    "Failed client connect: `get_system_info` call error after connection: Status { code: Cancelled, message: "
    '"operation was canceled", source: Some(tonic::transport::Error(Transport, hyper::Error(Canceled, '
    '"connection closed"))) }'
)
ALERT = (
    "Failed client connect: `get_system_info` call error after connection: Status { code: Unknown, message: "
    '"transport error", source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Custom { kind: '
    'InvalidData, error: "received fatal alert: UnknownCA" }))) }'
)


def test_a_closed_connection_after_the_handshake_is_explained_by_what_the_worker_sent(pki: Pki) -> None:
    without_cert = Settings(temporal_tls_ca=pki.ca.cert)
    with_cert = Settings(
        temporal_tls_ca=pki.ca.cert, temporal_tls_cert=pki.client.cert, temporal_tls_key=pki.client.key
    )
    assert "most likely it requires a client certificate (mTLS)" in str(refusal_hint(CLOSED, without_cert, tls=True))
    assert "most likely it does not trust the client certificate" in str(refusal_hint(CLOSED, with_cert, tls=True))
    assert "refused the handshake: it does not trust" in str(refusal_hint(ALERT, with_cert, tls=True))
    assert "set AIRLOCK_TEMPORAL_TLS=true" in str(refusal_hint(CLOSED, Settings(), tls=False))
    assert refusal_hint("Failed client connect: connection refused (os error 111)", Settings(), tls=False) is None


async def test_a_frontend_that_never_finishes_the_handshake_stops_the_worker_within_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
    pki: Pki,
) -> None:
    # A hostile (or wedged) peer: it accepts the connection, reads the ClientHello, answers nothing.
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(4096)

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    host, port = listener.sockets[0].getsockname()[:2]
    monkeypatch.setattr(connection, "CONNECT_TIMEOUT_SECONDS", 2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConfigError) as stalled:
            await connect(Settings(temporal_address=f"{host}:{port}", temporal_tls_ca=pki.ca.cert))
        waited = asyncio.get_running_loop().time() - started
    finally:
        for writer in held:
            writer.close()
        listener.close()
        await listener.wait_closed()
    assert waited < 10, str(stalled.value)
    assert str(stalled.value).startswith(
        f"cannot reach Temporal at {host}:{port} over TLS (namespace default): no answer within 2 s."
    )
    assert held, "the worker did dial the silent peer"


async def test_a_key_that_is_not_the_certificates_is_named(temporal_env: WorkflowEnvironment, pki: Pki) -> None:
    async with tls_proxy(address_of(temporal_env), pki.server, client_ca=pki.ca.cert) as frontend:
        with pytest.raises(ConfigError) as mismatched:
            await connect(
                Settings(
                    temporal_address=frontend.address,
                    temporal_tls_ca=pki.ca.cert,
                    temporal_tls_cert=pki.client.cert,
                    temporal_tls_key=pki.stranger.key,
                )
            )
    assert "AIRLOCK_TEMPORAL_TLS_KEY is not the private key of AIRLOCK_TEMPORAL_TLS_CERT" in str(mismatched.value)
    assert frontend.handshakes == [], "refused before any handshake"
