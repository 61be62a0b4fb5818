"""Start-up checks: every problem a worker (or `airlock check`) finds, collected and named at once.

Configuration (settings, files, a model without its key), Temporal and the namespace's search
attributes stop the worker; a dependency that is down (the model endpoint, an MCP server) does not:
the worker starts, reports it (runtime/health.py) and its calls fail into the normal retry path.
Each check names what is wrong and, where a person must act, the exact command that fixes it.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
import structlog
from pydantic import ValidationError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.models import ModelBackend, OpenAIModel
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool
from mcp_servers.tomlfiles import ConfigError
from runtime.devserver import SEARCH_ATTRIBUTES
from runtime.settings import Settings

log = structlog.get_logger("airlock.startup")

T = TypeVar("T")
Status = Literal["ok", "problem", "skipped"]

CHECK_TIMEOUT_S = 15.0
# Elasticsearch-backed visibility registers a new attribute asynchronously.
VISIBLE_DEADLINE_S = 30.0


def create_command(namespace: str, names: Iterable[str]) -> str:
    """The `temporal` command that registers `names` as Keyword search attributes on `namespace`."""
    args = ["temporal", "operator", "search-attribute", "create", "--namespace", namespace]
    for name in names:
        args += ["--name", name, "--type", "Keyword"]
    return shlex.join(args)


async def _custom_attributes(client: Client, namespace: str) -> set[str]:
    reply = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    return set(reply.custom_attributes) | set(reply.system_attributes)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Make sure `AirlockState` and `AirlockAgent` exist on `namespace`; return the ones created.

    Raises `ConfigError` with the command that creates them when the worker may not (or cannot).
    """
    try:
        missing = [name for name in SEARCH_ATTRIBUTES if name not in await _custom_attributes(client, namespace)]
    except RPCError as err:
        raise ConfigError(
            f"cannot list the search attributes of namespace {namespace}: {err.message}; make sure "
            f"{', '.join(SEARCH_ATTRIBUTES)} exist (Keyword), e.g. with: {create_command(namespace, SEARCH_ATTRIBUTES)}"
        ) from None
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            return []  # another worker (or worker process) starting at the same moment created them
        raise ConfigError(
            f"namespace {namespace} lacks the search attributes {', '.join(missing)} and this worker could not "
            f"create them ({err.message}). Without them no run gets past `starting`. Create them with: "
            f"{create_command(namespace, missing)}"
        ) from None
    deadline = time.monotonic() + VISIBLE_DEADLINE_S
    while not set(missing) <= await _custom_attributes(client, namespace):
        if time.monotonic() > deadline:
            raise ConfigError(f"search attributes {', '.join(missing)} were created on {namespace} but never appeared")
        await asyncio.sleep(0.2)
    log.info("search attributes created", namespace=namespace, names=missing)
    return missing


async def unreachable_model(model: ModelBackend) -> str | None:
    """Why the model provider cannot be reached, or None when it answers (any HTTP reply counts)."""
    if not isinstance(model, OpenAIModel):
        return None  # the scripted model is a file, already loaded
    url = str(model.client.base_url).rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as http:
            reply = await http.get(url, headers={"Authorization": f"Bearer {model.client.api_key}"})
    except httpx.HTTPError as err:
        return f"model provider at {model.client.base_url} is unreachable: {type(err).__name__}"
    if reply.status_code in (401, 403):
        return f"model provider at {model.client.base_url} refused the API key (HTTP {reply.status_code})"
    return None


async def unreachable_servers(pool: McpPool, names: Iterable[str]) -> dict[str, str]:
    """The MCP servers among `names` that do not list their tools, each with the reason."""

    async def probe(name: str) -> str | None:
        try:
            await asyncio.wait_for(pool.connection(name).list_tools(), CHECK_TIMEOUT_S)
        except (ServerFailedError, TimeoutError, OSError) as err:
            return str(err) or type(err).__name__
        return None

    ordered = sorted(names)
    reasons = await asyncio.gather(*(probe(name) for name in ordered))
    return {name: reason for name, reason in zip(ordered, reasons, strict=True) if reason is not None}


async def check_dependencies(model: ModelBackend, pool: McpPool, servers: Iterable[str]) -> dict[str, str]:
    """Every dependency (`model`, or an MCP server's name) that does not answer, with the reason."""
    model_problem, server_problems = await asyncio.gather(unreachable_model(model), unreachable_servers(pool, servers))
    problems = {} if model_problem is None else {"model": model_problem}
    return {**problems, **server_problems}


async def search_attributes_missing(client: Client, namespace: str) -> str | None:
    """What is missing of Airlock's search attributes on `namespace` (with the fixing command); nothing is created."""
    try:
        present = await _custom_attributes(client, namespace)
    except RPCError as err:
        return f"cannot list the search attributes of namespace {namespace}: {err.message}"
    missing = [name for name in SEARCH_ATTRIBUTES if name not in present]
    if not missing:
        return None
    return (
        f"namespace {namespace} lacks {', '.join(missing)} (a worker creates them when it may); "
        f"create them with: {create_command(namespace, missing)}"
    )


@dataclass(frozen=True)
class Check:
    """One start-up check: what was checked and, when it failed, the problem with its fix."""

    name: str
    status: Status
    detail: str = ""
    # A dependency that is down degrades the worker; any other problem stops it.
    dependency: bool = False

    def line(self) -> str:
        """`ok  name  detail`, for people."""
        return f"{self.status:<8} {self.name}: {self.detail}" if self.detail else f"{self.status:<8} {self.name}"

    def as_json(self) -> dict[str, Any]:
        """The check for machines (`-o json`)."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "dependency": self.dependency}


@dataclass
class Checks:
    """Start-up checks in the order they ran, so that every problem is named at once."""

    items: list[Check] = field(default_factory=list)

    def ok(self, name: str, detail: str = "", *, dependency: bool = False) -> None:
        """Record a check that passed."""
        self.items.append(Check(name, "ok", detail, dependency))

    def problem(self, name: str, detail: str, *, dependency: bool = False) -> None:
        """Record a check that failed, with what fixes it."""
        self.items.append(Check(name, "problem", detail, dependency))

    def skipped(self, name: str, why: str) -> None:
        """Record a check that could not run because of an earlier problem."""
        self.items.append(Check(name, "skipped", why))

    def run(self, name: str, step: Callable[[], T], detail: Callable[[T], str] = lambda _: "") -> T | None:
        """`step()`, recorded as `name`: its `ConfigError` is the problem; None when it failed."""
        try:
            value = step()
        except ConfigError as err:
            self.problem(name, str(err))
            return None
        self.ok(name, detail(value))
        return value

    async def run_async(
        self, name: str, step: Callable[[], Awaitable[T]], detail: Callable[[T], str] = lambda _: ""
    ) -> T | None:
        """`await step()`, recorded as `name` like `run`."""
        try:
            value = await step()
        except ConfigError as err:
            self.problem(name, str(err))
            return None
        self.ok(name, detail(value))
        return value

    @property
    def blocking(self) -> list[Check]:
        """The problems that stop a worker: all but dependencies that are down."""
        return [c for c in self.items if c.status == "problem" and not c.dependency]

    @property
    def passed(self) -> bool:
        """Whether every check that ran passed (dependencies included): `airlock check` exits 0."""
        return all(c.status != "problem" for c in self.items)

    def stop_if_blocking(self) -> None:
        """Raise one `ConfigError` naming every blocking problem, when there is any."""
        blocking = self.blocking
        if len(blocking) == 1:
            raise ConfigError(blocking[0].detail)
        if blocking:
            raise ConfigError(
                f"{len(blocking)} problems: "
                + "; ".join(f"({n}) {c.name}: {c.detail}" for n, c in enumerate(blocking, 1))
            )


def load_settings(checks: Checks, **overrides: Any) -> Settings:
    """`Settings()` from the environment, each bad value recorded; the rest is still checked with its default.

    pydantic names every bad variable of one environment at once; rebuilding with the defaults
    in their place lets the other checks (files, Temporal, model) run and be named too.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        bad: dict[str, str] = {}
        for error in err.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            bad.setdefault(key, message if _variable(key) in message else f"{_variable(key)}: {message}")
        checks.problem("settings", "; ".join(bad.values()))
        defaults = {key: _default(key) for key in bad}
        return Settings(**{**overrides, **defaults})
    checks.ok("settings")
    return settings


def _field_name(key: str) -> str:
    """The settings field a validation error's location names (a field name or its alias)."""
    for name, info in Settings.model_fields.items():
        if key in (name, info.validation_alias):
            return name
    return key


def _variable(key: str) -> str:
    """The environment variable behind a settings key."""
    info = Settings.model_fields.get(_field_name(key))
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"AIRLOCK_{_field_name(key).upper()}"


def _default(key: str) -> Any:
    info = Settings.model_fields[_field_name(key)]
    return info.get_default(call_default_factory=True)
