"""What the worker's dependencies (the model endpoint, each MCP server) are doing now: probed, logged, served.

A dependency that is down does not stop the worker (runtime/startup.py): it is logged when it
goes down (`dependency_down`, with its name and why) and when it answers again (`dependency_up`),
published as `airlock_dependency_up{kind, name}` on the metrics endpoint (runtime/metrics.py),
served as JSON on `/healthz` (`AIRLOCK_HEALTH_BIND`), and probed again every
`AIRLOCK_DEPENDENCY_CHECK_INTERVAL`. Meanwhile the calls of agents that use it fail into the
normal retry and breaker path; every other agent runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activities.models import ModelBackend, OpenAIModel
from mcp_servers.client.registry import McpPool
from mcp_servers.tomlfiles import ConfigError
from runtime.asgi import serve_app
from runtime.metrics import DependencyGauge
from runtime.startup import unreachable_model, unreachable_servers

log = structlog.get_logger("airlock.health")

Kind = Literal["model", "mcp_server"]


@dataclass
class Dependency:
    """One dependency as its last probe found it."""

    kind: Kind
    name: str
    up: bool | None = None
    why: str | None = None
    since: datetime | None = None
    checked_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The dependency as `/healthz` shows it."""
        return {
            "kind": self.kind,
            "name": self.name,
            "up": self.up,
            "why": self.why,
            "since": self.since.isoformat() if self.since else None,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


def model_name(model: ModelBackend) -> str:
    """The model dependency's name: the endpoint it calls, or `scripted` (a file, always there)."""
    return str(model.client.base_url) if isinstance(model, OpenAIModel) else "scripted"


class DependencyHealth:
    """The worker's dependencies, probed now and then; each change logged and published."""

    def __init__(
        self,
        model: ModelBackend,
        pool: McpPool,
        *,
        gauge: DependencyGauge | None = None,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
        """Probe `model` and every server of `pool`; publish on `gauge`; `scrub` the reasons served."""
        self.model = model
        self.pool = pool
        self.gauge = gauge
        self.scrub = scrub
        self.dependencies = [Dependency("model", model_name(model))] + [
            Dependency("mcp_server", name) for name in sorted(pool.servers)
        ]

    @property
    def down(self) -> list[Dependency]:
        """The dependencies whose last probe failed."""
        return [d for d in self.dependencies if d.up is False]

    async def check(self) -> list[Dependency]:
        """Probe every dependency once; log and publish what changed; return those that are down."""
        model_problem, server_problems = await asyncio.gather(
            unreachable_model(self.model), unreachable_servers(self.pool, self.pool.servers)
        )
        now = datetime.now(UTC)
        for dependency in self.dependencies:
            why = model_problem if dependency.kind == "model" else server_problems.get(dependency.name)
            self._record(dependency, None if why is None else self.scrub(why), now)
        return self.down

    def _record(self, dependency: Dependency, why: str | None, now: datetime) -> None:
        up = why is None
        if dependency.up is not up:
            dependency.since = now
            if not up:
                log.warning("dependency_down", kind=dependency.kind, dependency=dependency.name, why=why)
            elif dependency.up is False:
                log.info("dependency_up", kind=dependency.kind, dependency=dependency.name)
        dependency.up, dependency.why, dependency.checked_at = up, why, now
        if self.gauge is not None:
            self.gauge.set(dependency.kind, dependency.name, up)

    async def run(self, stop: asyncio.Event, every: timedelta) -> None:
        """Probe again every `every` until `stop` is set; a probe that breaks is logged and tried again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every.total_seconds())
                return
            try:
                await self.check()
            except Exception:  # a task boundary: one broken probe must not end the probing
                log.exception("dependency_check_failed")

    def report(self) -> dict[str, Any]:
        """`/healthz`: `ok` when every dependency answered its last probe, else `degraded`, and each one."""
        return {
            "status": "degraded" if self.down else "ok",
            "dependencies": [d.as_json() for d in self.dependencies],
        }


def health_app(health: DependencyHealth) -> Starlette:
    """`GET /healthz`: the report as JSON, 200 while the worker runs (a degraded worker still serves)."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(health.report())

    return Starlette(routes=[Route("/healthz", healthz)])


def bind(address: str) -> socket.socket:
    """The listening socket for `/healthz` at `host:port`; a busy or bad address is a `ConfigError`."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot serve /healthz on {address}: {err.strerror} (set AIRLOCK_HEALTH_BIND)") from None
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def serve(health: DependencyHealth, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve `/healthz` on `sock` until `stop` is set."""
    await serve_app(health_app(health), sock, stop)
