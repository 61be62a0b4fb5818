"""Configuration errors stop the worker at load, naming the file and the key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_servers.tomlfiles import ConfigError
from runtime.devserver import free_port
from runtime.settings import Settings
from tests.support.catalog import load_error
from tests.support.project import TICKETS_STDIO, make_project
from worker import build_activities, model_backend

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_DEADLINE_S = 20.0


def agent(extra: str = "", *, head: str = "") -> str:
    """A support agent file with `head` before its tables and `extra` after them."""
    return (
        'name = "support"\ninstructions = "You resolve support tickets."\n'
        f'mcp_servers = ["tickets"]\n{head}\n[tools]\n"get_*" = "auto"\n{extra}'
    )


def test_valid_project_loads(tmp_path: Path) -> None:
    # The control for every case below: the same project without the mistake loads.
    config = make_project(tmp_path)
    activities = build_activities(config.settings, environ=config.environ)
    assert set(activities.catalog.agents) == {"support"}


def test_unknown_key_in_agent_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, agents={"support": agent(head='colour = "blue"')})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "'colour'" in message and "unknown key" in message


def test_bad_policy_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, agents={"support": agent('close_ticket = "maybe"\n')})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "'tools.close_ticket'" in message and "maybe" in message


def test_unknown_mcp_server(tmp_path: Path) -> None:
    text = agent().replace('mcp_servers = ["tickets"]', 'mcp_servers = ["tickets", "crm"]')
    message = load_error(tmp_path, agents={"support": text})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "'mcp_servers[1]'" in message and "'crm'" in message


def test_unknown_handoff_target(tmp_path: Path) -> None:
    message = load_error(tmp_path, agents={"support": agent(head='handoffs = ["billing"]')})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "'handoffs[0]'" in message and "'billing'" in message


def test_invalid_toml(tmp_path: Path) -> None:
    message = load_error(tmp_path, agents={"support": 'name = "support"\ninstructions = \n'})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "invalid TOML" in message and "line 2" in message


def test_bad_approval_timeout(tmp_path: Path) -> None:
    message = load_error(tmp_path, agents={"support": agent('[approval]\ntimeout = "soon"\n')})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert "'approval.timeout'" in message and "soon" in message


def test_duplicate_agent_name_across_files(tmp_path: Path) -> None:
    # helpdesk.toml (loaded first) declares the name support.toml takes from its file name.
    message = load_error(
        tmp_path,
        agents={
            "helpdesk": agent(),
            "support": agent().replace('name = "support"\n', ""),
        },
    )
    assert str(tmp_path / "agents" / "support.toml") in message
    assert str(tmp_path / "agents" / "helpdesk.toml") in message
    assert "'name'" in message and "'support'" in message


def test_servers_file_unknown_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, servers=TICKETS_STDIO + 'colour = "blue"\n')
    assert str(tmp_path / "servers.toml") in message
    assert "'servers.tickets.colour'" in message and "unknown key" in message


def test_stdio_server_without_command(tmp_path: Path) -> None:
    servers = '[servers.tickets]\ntransport = "stdio"\nargs = ["-m", "mcp_servers.tickets"]\n'
    message = load_error(tmp_path, servers=servers)
    assert str(tmp_path / "servers.toml") in message
    assert "'servers.tickets'" in message and "'command'" in message


def test_header_variable_not_set_on_worker(tmp_path: Path) -> None:
    servers = TICKETS_STDIO + (
        '\n[servers.crm]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\n'
        'headers = { Authorization = "Bearer ${CRM_MCP_TOKEN}" }\n'
    )
    message = load_error(tmp_path, servers=servers)
    assert str(tmp_path / "servers.toml") in message
    assert "'servers.crm.headers.Authorization'" in message and "CRM_MCP_TOKEN" in message


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("tickets.", "empty server or tool part"),
        (".close_ticket", "empty server or tool part"),
        ("crm.close_*", "matches none of the agent's mcp_servers"),
        ("close ticket", "matches no valid MCP tool name"),
    ],
)
def test_policy_rule_that_can_match_nothing(tmp_path: Path, key: str, why: str) -> None:
    message = load_error(tmp_path, agents={"support": agent(f'"{key}" = "deny"\n')})
    assert str(tmp_path / "agents" / "support.toml") in message
    assert repr(f"tools.{key}") in message and why in message


def test_policy_rule_for_a_dotted_tool_name_loads(tmp_path: Path) -> None:
    # `*.a.b` is tool `a.b` on any server: the control for the rule-key errors above.
    config = make_project(tmp_path, agents={"support": agent('"*.a.b" = "deny"\n"tickets.get_*" = "auto"\n')})
    activities = build_activities(config.settings, environ=config.environ)
    assert activities.catalog.agents["support"].tools["*.a.b"] == "deny"


@pytest.mark.parametrize("name", ["tickets.v2", "Tickets", "2tickets", "x" * 65])
def test_server_name_outside_the_allowed_form(tmp_path: Path, name: str) -> None:
    servers = TICKETS_STDIO + f'\n[servers."{name}"]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\n'
    message = load_error(tmp_path, servers=servers)
    assert str(tmp_path / "servers.toml") in message
    assert repr(f"servers.{name}") in message and "no dots" in message


def test_script_step_with_tool_call_and_message(tmp_path: Path) -> None:
    script = {
        "support": [
            {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": "T-1"}}, "message": "Hi."},
        ]
    }
    message = load_error(tmp_path, script=script)
    assert str(tmp_path / "script.json") in message
    assert "'support[0]'" in message and "tool_call" in message and "message" in message


def test_no_key_and_no_script_says_so() -> None:
    # Explicit None wins over whatever the environment running the tests has set.
    settings = Settings(model_provider=None, scripted_model_file=None, openai_api_key=None)
    with pytest.raises(ConfigError) as failure:
        model_backend(settings)
    message = str(failure.value)
    assert "no model configured" in message
    assert "OPENAI_API_KEY" in message and "AIRLOCK_SCRIPTED_MODEL_FILE" in message


# --- the worker process ------------------------------------------------------------------------


def worker_environ(root: Path, **variables: str) -> dict[str, str]:
    """The environment of a `python worker.py` child: nothing Airlock-related leaks in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRLOCK_", "OPENAI_"))}
    env.update(AIRLOCK_LOG_FORMAT="json", AIRLOCK_DATA_DIR=str(root / "data"), **variables)
    return env


def run_worker(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `python worker.py` to its exit (killed at the deadline); return it and its runtime."""
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WORKER_DEADLINE_S,
    )
    return finished, time.monotonic() - started


@pytest.mark.integration  # runs the worker as a process
def test_worker_exits_2_on_config_error_before_connecting(tmp_path: Path) -> None:
    config = make_project(tmp_path, agents={"support": agent(head='colour = "blue"')})
    env = worker_environ(
        tmp_path,
        AIRLOCK_AGENTS_DIR=str(config.settings.agents_dir),
        AIRLOCK_MCP_SERVERS_FILE=str(config.settings.mcp_servers_file),
        AIRLOCK_SCRIPTED_MODEL_FILE=str(config.settings.scripted_model_file),
        # Nothing listens here: the worker names that too, with the file's mistake (every problem at once).
        AIRLOCK_TEMPORAL_ADDRESS="127.0.0.1:1",
        TICKETS_DB=str(config.tickets_db),
    )
    finished, _ = run_worker(env)
    assert finished.returncode == 2, finished.stderr
    assert str(config.settings.agents_dir / "support.toml") in finished.stderr
    assert "'colour'" in finished.stderr
    assert "2 problems: (1) agents:" in finished.stderr, "the file's mistake is named first"
    assert "cannot reach Temporal at 127.0.0.1:1" in finished.stderr


@pytest.mark.integration  # runs the worker as a process
def test_worker_exits_fast_when_temporal_is_unreachable(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    env = worker_environ(
        tmp_path,
        AIRLOCK_AGENTS_DIR=str(config.settings.agents_dir),
        AIRLOCK_MCP_SERVERS_FILE=str(config.settings.mcp_servers_file),
        AIRLOCK_SCRIPTED_MODEL_FILE=str(config.settings.scripted_model_file),
        AIRLOCK_TEMPORAL_ADDRESS=address,
        TICKETS_DB=str(config.tickets_db),
    )
    finished, seconds = run_worker(env)
    assert finished.returncode != 0
    assert seconds < WORKER_DEADLINE_S
    assert address in finished.stderr, finished.stderr
