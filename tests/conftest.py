"""Shared fixtures (one real Temporal dev server per session, clients, model stubs) and the `integration` tier.

Helpers that are not fixtures live in `tests/support/` (project, runs, histories, conditions, ...).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from console.signing import generate_key
from runtime import devserver
from tests.support.openai_stub import OpenAIStub
from tests.support.people import People
from tests.support.properties import use_quick_profile
from tests.support.time_skipping import SERVER_ARGS, skipping_client

# Fixtures that start a process or a server; a test that uses one, even through another fixture,
# is an integration test. A module that starts one itself says so with `pytestmark`.
PROCESS_FIXTURES = frozenset({"temporal_env", "client", "time_skipping_client", "stubs"})
INTEGRATION = "integration"


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The bundled `temporal server start-dev` on a free loopback port, for the whole session.

    Time skipping is allowed on it; only the runs a test starts with it (`time_skipping_client`,
    `tests.support.time_skipping.fast_forward`) skip time.
    """
    env = await devserver.start(extra_args=SERVER_ARGS)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def stubs() -> Iterator[list[OpenAIStub]]:
    """OpenAI-compatible stubs a test starts; every one is stopped at teardown."""
    started: list[OpenAIStub] = []
    try:
        yield started
    finally:
        for stub in started:
            stub.stop()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's Temporal server (pydantic JSON converter)."""
    return temporal_env.client


@pytest.fixture
def time_skipping_client(client: Client) -> Client:
    """A client whose runs skip time whenever nothing is in flight: a timeout fires without the wait."""
    return skipping_client(client)


@pytest.fixture
def people(tmp_path: Path) -> People:
    """alice, bob, dave and the inbox service, each with a key; an approvers file listing them."""
    found = People({name: generate_key() for name in ("alice", "bob", "dave", "inbox")}, tmp_path / "approvers.toml")
    found.write()
    return found


def pytest_configure(config: pytest.Config) -> None:
    """The quick tier (`-m "not integration"`) runs property tests with a few examples each."""
    if "not integration" in (config.option.markexpr or ""):
        use_quick_profile()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a process-starting fixture as `integration`."""
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """A test outside the `integration` tier that starts a process or a server fails, naming the marker.

    Keeps `pytest -m "not integration"` quick and honest: nothing there waits on a child process
    or a listening socket. Its fixtures are held to the same rule, whatever their scope.
    """
    if item.get_closest_marker(INTEGRATION) is not None:
        return (yield)
    popen_init, listen = subprocess.Popen.__init__, socket.socket.listen

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(
                f"{item.nodeid} {what} but is not marked integration: use a process-starting fixture "
                "or set `pytestmark = pytest.mark.integration` in its module"
            )

        return refused

    subprocess.Popen.__init__ = refuse("starts a process")  # type: ignore[method-assign]
    socket.socket.listen = refuse("starts a server (a listening socket)")  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
        socket.socket.listen = listen  # type: ignore[method-assign]
