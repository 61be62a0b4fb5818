"""The Temporal connection from a `temporal` CLI profile (temporalio.envconfig), with AIRLOCK_TEMPORAL_* on top."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tomlfiles import ConfigError
from runtime.connection import connect, with_profile
from runtime.settings import Settings
from tests.support.airlock_cli import address_of, airlock
from tests.support.project import airlock_worker, make_project
from tests.support.runs import workflow_id
from workflows.payloads import AgentResult

SCRIPT = {"support": [{"message": "Nothing to do."}]}
# Nothing listens here: a connection that goes there fails at once.
DEAD = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_connection_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no AIRLOCK_TEMPORAL_*, TEMPORAL_* or temporal.toml of the machine."""
    for name in ("ADDRESS", "NAMESPACE", "API_KEY", "TLS", "CONFIG_FILE", "PROFILE"):
        monkeypatch.delenv(f"AIRLOCK_TEMPORAL_{name}", raising=False)
        monkeypatch.delenv(f"TEMPORAL_{name}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


def profile_file(path: Path, address: str, *, profile: str = "default", namespace: str = "default") -> Path:
    """A temporal.toml with one profile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(
            f"""
            [profile.{profile}]
            address = "{address}"
            namespace = "{namespace}"
            """
        )
    )
    return path


async def test_the_worker_connects_through_a_named_profile_and_completes_a_run(
    temporal_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = profile_file(tmp_path / "temporal.toml", address_of(temporal_env), profile="airlock-test")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("TEMPORAL_PROFILE", "airlock-test")
    project = make_project(tmp_path / "project", script=SCRIPT)
    assert "temporal_address" not in project.settings.model_fields_set
    settings = with_profile(project.settings)
    assert settings.temporal_address == address_of(temporal_env)
    client = await connect(project.settings)
    async with airlock_worker(client, project):
        result = await client.execute_workflow(
            "AgentWorkflow",
            {"agent": "support", "input": "hello", "requester": "carol"},
            id=workflow_id("profile"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
    assert result.output == "Nothing to do."


async def test_an_airlock_variable_wins_over_the_profile(
    temporal_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile_file(tmp_path / "temporal.toml", DEAD, namespace="other")))
    monkeypatch.setenv("AIRLOCK_TEMPORAL_ADDRESS", address_of(temporal_env))
    settings = with_profile(Settings())
    # The address is Airlock's own; the namespace, which Airlock's variables leave unset, the profile's.
    assert (settings.temporal_address, settings.temporal_namespace) == (address_of(temporal_env), "other")
    monkeypatch.setenv("AIRLOCK_TEMPORAL_NAMESPACE", "default")
    client = await connect(Settings())
    assert client.namespace == "default"
    await client.count_workflows()


def test_an_explicit_field_wins_and_applying_twice_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile_file(tmp_path / "temporal.toml", "profile:7233")))
    flags = Settings().model_copy(update={"temporal_address": "flag:7233"})  # as the CLI's --address
    assert with_profile(flags).temporal_address == "flag:7233"
    once = with_profile(Settings())
    assert once.temporal_address == "profile:7233"
    assert with_profile(once) == once
    monkeypatch.setenv("TEMPORAL_ADDRESS", "variable:7233")  # the temporal CLI's own variable beats its file
    assert with_profile(Settings()).temporal_address == "variable:7233"


def test_a_missing_file_or_profile_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "nowhere.toml"))
    with pytest.raises(ConfigError, match=r"TEMPORAL_CONFIG_FILE=.*nowhere.toml: no such file"):
        with_profile(Settings())
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile_file(tmp_path / "temporal.toml", DEAD)))
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    with pytest.raises(ConfigError, match=r"Temporal profile 'staging' in .*temporal.toml: .*not found"):
        with_profile(Settings())


async def test_the_cli_uses_the_temporal_clis_default_profile(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", script=SCRIPT)
    run_id = workflow_id("cli-profile")
    home = tmp_path / "home"
    # Where `temporal config set` writes: the profile every Temporal tool of this user shares.
    profile_file(home / ".config" / "temporalio" / "temporal.toml", address_of(temporal_env))
    async with airlock_worker(client, project):  # a closed run's queries are answered by a worker
        await client.execute_workflow(
            "AgentWorkflow",
            {"agent": "support", "input": "hello", "requester": "carol"},
            id=run_id,
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        shown = await airlock("show", run_id, "-o", "json", home=home)
        refused = await airlock("show", run_id, "-o", "json", home=home, env={"AIRLOCK_TEMPORAL_ADDRESS": DEAD})
    assert shown.json()["status"]["state"] == "completed", shown.describe()
    assert refused.code == 1, refused.describe()
    assert DEAD in refused.err, refused.describe()
