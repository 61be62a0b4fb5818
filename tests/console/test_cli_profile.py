"""The `airlock` CLI takes its Temporal namespace from a `temporal` CLI profile, and its flags win.

A signature binds the namespace, so the one the CLI signs for must be the one it talks to; signing
offline (`airlock sign --sha256`) shows which namespace the CLI chose without a server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.approvers import load_directory
from runtime.devserver import free_port
from tests.support.airlock_cli import airlock
from workflows.identity import AuthorityRefusedError, Expected, Verifier
from workflows.payloads import Approve

pytestmark = pytest.mark.integration  # every test runs the installed `airlock` as a subprocess

SHA = "9d65e51ede47968fa9b11d724da8c3ff9b6e037ac968ba1c26a5f5288eeaf39a"


async def signed_for(home: Path, env: dict[str, str], *flags: str) -> Approve:
    """`airlock [FLAGS] sign ... --sha256` offline (nothing listens at its address): the payload it prints."""
    offline = {"AIRLOCK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", **env}
    base = ["wf-1", "call-1", "--as", "alice", "--sha256", SHA, "--run-id", "run-1", "--decision", "approve"]
    ran = await airlock(*flags, "sign", *base, home=home, env=offline)
    return Approve.model_validate(ran.json())


def namespace_of(verifier: Verifier, payload: Approve) -> str:
    """The namespace the signature binds: the one of these that verifies."""
    for namespace in ("default", "staging", "prod"):
        expected = Expected("wf-1", "call-1", "approve", "alice", SHA, namespace=namespace, run_id="run-1")
        try:
            verifier.identify(payload.signature, expected, datetime.now(UTC))
        except AuthorityRefusedError:
            continue
        return namespace
    raise AssertionError("the signature binds none of the namespaces tried")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with no temporal.toml, and no TEMPORAL_* of the machine's shell."""
    for name in [k for k in os.environ if k.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)
    return tmp_path


async def test_the_cli_signs_for_the_profiles_namespace_unless_a_flag_or_variable_says_otherwise(home: Path) -> None:
    keygen = await airlock("keygen", "alice", "-o", "json", home=home)
    (home / "approvers.toml").write_text(keygen.json()["toml"])
    verifier = Verifier(load_directory(home / "approvers.toml"))

    assert namespace_of(verifier, await signed_for(home, {})) == "default"
    # The `temporal` CLI's own variable, as `temporal env` or a profile in temporal.toml gives it.
    profile = {"TEMPORAL_NAMESPACE": "staging"}
    assert namespace_of(verifier, await signed_for(home, profile)) == "staging"
    toml = home / ".config" / "temporalio" / "temporal.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text('[profile.default]\naddress = "127.0.0.1:9"\nnamespace = "staging"\n')
    assert namespace_of(verifier, await signed_for(home, {})) == "staging"
    # Airlock's own variable, then the flag, win over the profile.
    airlock_variable = {"AIRLOCK_TEMPORAL_NAMESPACE": "prod"}
    assert namespace_of(verifier, await signed_for(home, airlock_variable)) == "prod"
    assert namespace_of(verifier, await signed_for(home, profile, "--namespace", "prod")) == "prod"
