"""Start-up checks: a worker says `ready` only once its namespace, model and MCP servers are.

Each check names what is wrong and, where a person must act, the exact command that fixes it.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Iterable

import httpx
import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from mcp_servers.registry import McpPool, ServerUnavailable
from workflows.devserver import SEARCH_ATTRIBUTES
from workflows.errors import ConfigError
from workflows.models import ModelBackend, OpenAIModel

log = structlog.get_logger("airlock.startup")

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
        except (ServerUnavailable, TimeoutError, OSError) as err:
            return str(err) or type(err).__name__
        return None

    ordered = sorted(names)
    reasons = await asyncio.gather(*(probe(name) for name in ordered))
    return {name: reason for name, reason in zip(ordered, reasons, strict=True) if reason is not None}


async def check_dependencies(model: ModelBackend, pool: McpPool, servers: Iterable[str]) -> None:
    """Raise `ConfigError` naming every dependency (model, MCP server) that does not answer."""
    problems: list[str] = []
    model_problem, server_problems = await asyncio.gather(unreachable_model(model), unreachable_servers(pool, servers))
    if model_problem is not None:
        problems.append(model_problem)
    problems += [f"MCP server {name!r}: {reason}" for name, reason in server_problems.items()]
    if problems:
        raise ConfigError("not ready: " + "; ".join(problems))
