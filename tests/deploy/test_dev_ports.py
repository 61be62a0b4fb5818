"""`--dev` and `--demo` own their ports or stop before doing anything, naming who holds the port;
`--demo` runs the worker's start-up checks and stops when its server does not start.

Each test moves every port through the documented settings, so tests never meet on 7233/8233/8234.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.dev_worker import clean_env, port_holder, run_worker

pytestmark = pytest.mark.integration  # runs worker processes and holds ports


def stopped_with(logged: list[dict[str, Any]]) -> str:
    """The one `configuration error` a stopped worker logged."""
    [line] = [r for r in logged if r["event"] == "configuration error"]
    return str(line["error"])


async def test_dev_stops_when_another_process_holds_its_ports_and_names_it(tmp_path: Path) -> None:
    approvers = tmp_path / "data" / "dev" / "approvers.toml"
    approvers.parent.mkdir(parents=True)
    approvers.write_text("# the operator's own file\n")
    async with port_holder() as grpc, port_holder() as inbox:
        env = clean_env(tmp_path, AIRLOCK_TEMPORAL_ADDRESS=f"127.0.0.1:{grpc.port}", AIRLOCK_INBOX_PORT=str(inbox.port))
        code, out, logged = await run_worker(env, "--dev")
    message = stopped_with(logged)
    assert code == 2, message
    assert message.startswith("2 problems:"), message
    assert f"Temporal gRPC port {grpc.port} on 127.0.0.1 is held by pid {grpc.pid} ({sys.executable} -c" in message
    assert "set AIRLOCK_TEMPORAL_ADDRESS to a free port" in message
    assert f"inbox port {inbox.port} on 127.0.0.1 is held by pid {inbox.pid}" in message
    assert "set AIRLOCK_INBOX_PORT to a free port" in message
    events = [r["event"] for r in logged]
    assert "starting embedded Temporal" not in events and "worker ready" not in events
    assert approvers.read_text() == "# the operator's own file\n", "nothing rewritten for another server"
    assert sorted(p.name for p in approvers.parent.iterdir()) == ["approvers.toml"], "no keys written either"
    assert out == ""


async def test_demo_stops_when_the_web_ui_port_is_taken(tmp_path: Path) -> None:
    async with port_holder() as ui:
        code, out, logged = await run_worker(clean_env(tmp_path, AIRLOCK_DEV_UI_PORT=str(ui.port)), "--demo")
    message = stopped_with(logged)
    assert code == 2
    assert f"Temporal Web UI port {ui.port} on 127.0.0.1 is held by pid {ui.pid}" in message
    assert "set AIRLOCK_DEV_UI_PORT to a free port" in message
    assert "completed" not in out and "started AgentWorkflow" not in out
    assert not (tmp_path / "data" / "demo").exists(), "the demo wrote nothing"


async def test_demo_runs_the_start_up_checks_and_stops_when_its_server_does_not_start(tmp_path: Path) -> None:
    servers = tmp_path / "servers.toml"
    servers.write_text(
        '[servers.tickets]\ntransport = "stdio"\ncommand = "airlock-no-such-command"\ntrust = "trusted"\n'
    )
    code, out, logged = await run_worker(clean_env(tmp_path, AIRLOCK_MCP_SERVERS_FILE=str(servers)), "--demo")
    message = stopped_with(logged)
    assert code == 2, out
    assert "the demo needs every dependency" in message
    assert "mcp_server 'tickets'" in message
    [down] = [r for r in logged if r["event"] == "dependency_down"]
    assert down["dependency"] == "tickets"
    assert "completed" not in out and "started AgentWorkflow" not in out
