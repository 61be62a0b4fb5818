"""The inbox trusts the TCP peer, never a header, to decide that its proxy is speaking.

The attack (issue 19, item 3): a request from an address that is not the proxy, carrying
`X-Forwarded-For: <the proxy's address>` and the identity header. uvicorn's proxy_headers used to
rewrite the client address from that header before the trusted-proxy check, so the inbox believed
the identity and signed the approval as alice. And a proxy on the same host (127.0.0.1, uvicorn's
default forwarded_allow_ips) that sets X-Forwarded-For itself, as every proxy does, got 401.

Here a real `airlock inbox` process serves a real run (signed decisions on: the inbox signs as
its service for the person); requests are real HTTP from distinct loopback addresses (127.0.0.x
are all loopback, so each is a peer of its own), and the proxy is a small real HTTP proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from console import signing
from mcp_servers.tickets.store import count_writes
from runtime.devserver import free_port
from tests.support.airlock_cli import AIRLOCK, address_of
from tests.support.conditions import wait_for
from tests.support.histories import assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import pending_of, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult

CLOSE_T1 = {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-1"}}}
SCRIPT = {"support": [CLOSE_T1, {"message": "Done."}]}
HEADER = "X-Forwarded-User"
DEADLINE_S = 30.0
HIDDEN = re.compile(r'name="(csrf|sha256)" value="([^"]*)"')


def write_approvers(tmp_path: Path) -> tuple[Path, Path]:
    """alice and bob as people, and the inbox service that may assert both."""
    entries = [signing.toml_entry(name, signing.generate_key()) for name in ("alice", "bob")]
    inbox_key = tmp_path / "inbox.key"
    key = signing.generate_key()
    signing.save_private_key(key, inbox_key)
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(
        "\n\n".join(entries)
        + '\n\n[services.inbox]\nkeys = ["'
        + signing.public_key_entry(signing.public_bytes(key))
        + '"]\nmay_assert = ["alice", "bob"]\n'
    )
    return approvers, inbox_key


@contextlib.asynccontextmanager
async def inbox_process(
    temporal_env: WorkflowEnvironment, inbox_key: Path, *, trusted: str, allowed_host: str | None = None
) -> AsyncIterator[str]:
    """`airlock inbox` on 127.0.0.1 trusting `trusted` as its proxy; yields its base URL."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_") and k != "FORWARDED_ALLOW_IPS"}
    environ.update(
        {
            "AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env),
            "AIRLOCK_INBOX_TRUSTED_PROXIES": trusted,
            "AIRLOCK_INBOX_KEY_FILE": str(inbox_key),
            "AIRLOCK_LOG_FORMAT": "json",
        }
    )
    if allowed_host is not None:
        environ["AIRLOCK_INBOX_ALLOWED_HOSTS"] = allowed_host
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        *("inbox", "--host", "127.0.0.1", "--port", str(port)),
        env=environ,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(url + "/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_for(healthy, timeout=DEADLINE_S, what="the inbox to answer")
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), DEADLINE_S)


@contextlib.asynccontextmanager
async def tiny_proxy(upstream_port: int, *, port: int, person: str) -> AsyncIterator[None]:
    """An authenticating reverse proxy on 127.0.0.1:`port`: it says who the person is and who connected.

    Like oauth2-proxy or nginx, it drops any identity header the client sent, sets its own, and
    sets X-Forwarded-For to the client's address; it connects to the inbox from 127.0.0.1.
    """

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[:-2]
            request_line, headers = lines[0], lines[1:]
            kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in ("x-forwarded-user", "connection")]
            length = next((int(h.split(":", 1)[1]) for h in kept if h.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length)
            client_host = writer.get_extra_info("peername")[0]
            forwarded = [*kept, f"{HEADER}: {person}", f"X-Forwarded-For: {client_host}", "Connection: close"]
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", upstream_port, local_addr=("127.0.0.1", 0)
            )
            up_writer.write(("\r\n".join([request_line, *forwarded]) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            writer.write(await up_reader.read())
            await writer.drain()
            up_writer.close()
        finally:
            writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def hidden_fields(page: str) -> dict[str, str]:
    """The csrf token and sha256 the call page's approve form carries."""
    return {name: value for name, value in HIDDEN.findall(page)}


async def start_support(client: Client, task_queue: str, prefix: str) -> Any:
    """A support run that waits to close T-1; carol requested it."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="Close T-1, it is fixed.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=task_queue,
        result_type=AgentResult,
    )


async def test_a_forwarded_for_header_naming_the_proxy_does_not_make_a_stranger_the_proxy(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    approvers, inbox_key = write_approvers(tmp_path)
    project = make_project(tmp_path, script=SCRIPT, approvers_file=approvers)
    # The proxy is 127.0.0.2; the attacker connects from 127.0.0.1 and claims to be forwarded by it.
    async with (
        airlock_worker(client, project),
        inbox_process(temporal_env, inbox_key, trusted="127.0.0.2") as url,
    ):
        handle = await start_support(client, project.settings.task_queue, "inbox-spoof")
        try:
            [pending] = await wait_pending(handle)
            call = pending["call_id"]
            spoofed = {HEADER: "alice", "X-Forwarded-For": "127.0.0.2", "Origin": url}
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.1")
            async with httpx.AsyncClient(base_url=url, transport=transport) as http:
                page = await http.get("/call", params={"wf": handle.id, "call": call}, headers=spoofed)
                form = hidden_fields(page.text)
                posted = await http.post(
                    "/decide",
                    data={
                        "wf": handle.id,
                        "call": call,
                        "action": "approve",
                        "reason": "",
                        "sha256": form.get("sha256", pending["arguments_sha256"]),
                        "csrf": form.get("csrf", ""),
                    },
                    headers=spoofed,
                )
            assert page.status_code == 401, page.text
            assert "127.0.0.1 is not a trusted proxy" in page.text
            assert posted.status_code == 401, posted.text
            # Nothing was signed or recorded: the call waits as it did, and nothing was written.
            assert await pending_of(handle) == [pending]
            audit = await handle.query("audit", result_type=list)
            assert [e["event"] for e in audit] == ["requested"]
            assert count_writes(project.tickets_db, "close_ticket") == 0
        finally:
            await handle.terminate("test over")
    await assert_replays(handle)


async def test_a_proxy_on_the_same_host_that_sets_forwarded_for_is_believed(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    approvers, inbox_key = write_approvers(tmp_path)
    project = make_project(tmp_path, script=SCRIPT, approvers_file=approvers)
    proxy_port = free_port()
    allowed = f"127.0.0.1:{proxy_port}"
    async with (
        airlock_worker(client, project),
        inbox_process(temporal_env, inbox_key, trusted="127.0.0.1", allowed_host=allowed) as url,
    ):
        upstream = int(url.rsplit(":", 1)[1])
        async with tiny_proxy(upstream, port=proxy_port, person="alice"):
            proxy_url = f"http://{allowed}"
            handle = await start_support(client, project.settings.task_queue, "inbox-proxy")
            [pending] = await wait_pending(handle)
            call = pending["call_id"]
            # The person's browser is another peer (127.0.0.3); the proxy tells the inbox so.
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
            headers = {"Host": allowed, "Origin": f"http://{allowed}"}
            async with httpx.AsyncClient(base_url=proxy_url, transport=transport) as http:
                page = await http.get("/call", params={"wf": handle.id, "call": call}, headers=headers)
                assert page.status_code == 200, page.text
                form = hidden_fields(page.text)
                assert form["sha256"] == pending["arguments_sha256"]
                posted = await http.post(
                    "/decide",
                    data={"wf": handle.id, "call": call, "action": "approve", "reason": "", **form},
                    headers=headers,
                )
            assert posted.status_code == 303, posted.text
            result = await asyncio.wait_for(handle.result(), DEADLINE_S)
    [record] = result.approvals
    assert (record.decision, record.decided_by) == ("approved", "alice")
    assert record.identity is not None and record.identity.startswith("signed:inbox")
    assert count_writes(project.tickets_db, "close_ticket") == 1
    await assert_replays(handle)
