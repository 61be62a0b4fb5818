"""Serving the inbox: its settings turned into an app, and uvicorn running it in this event loop."""

from __future__ import annotations

import asyncio
import socket

from starlette.applications import Starlette
from temporalio.client import Client

from console import signing
from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper, default_hosts
from console.inbox.runs import Runs
from mcp_servers.tomlfiles import ConfigError
from runtime.asgi import serve_app
from runtime.settings import Settings

# `python worker.py --dev`: who the inbox says you are (an approver of the bundled agents).
DEV_PERSON = "alice"


def make_app(client: Client, settings: Settings, *, dev_identity: str | None = None) -> Starlette:
    """The inbox app for these settings; without a dev identity it needs trusted proxies."""
    if dev_identity is None and not settings.inbox_trusted_proxies:
        raise ConfigError(
            "the inbox believes the identity header only from its proxy: set AIRLOCK_INBOX_TRUSTED_PROXIES "
            "(the addresses of the reverse proxy that authenticates people)"
        )
    try:
        gatekeeper = Gatekeeper(
            identity_header=settings.inbox_identity_header,
            trusted_proxies=settings.inbox_trusted_proxies,
            allowed_hosts=settings.inbox_allowed_hosts or default_hosts(settings.inbox_host, settings.inbox_port),
            dev_identity=dev_identity,
        )
    except ValueError as err:
        raise ConfigError(f"AIRLOCK_INBOX_TRUSTED_PROXIES: {err}") from None
    key = signing.load_private_key(settings.inbox_key_file) if settings.inbox_key_file is not None else None
    app = build_app(Runs(client, key, service=settings.inbox_service_name), gatekeeper)
    # `--dev`'s loopback inbox is out of Slack's reach: Slack is for `airlock inbox` only.
    if settings.slack_file is not None and dev_identity is None:
        from console import slack  # Slack's SDK loads only when Slack is configured

        found = slack.from_settings(client, settings)
        if found is not None:
            # Not behind the pages' Host check: Slack's signature is what this route believes.
            app.router.routes.append(found.route)
            app.state.slack = found
    return app


def inbox_url(settings: Settings) -> str:
    """The link people open (loopback binds are shown as localhost)."""
    host = settings.inbox_host
    shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0") else host
    return f"http://{shown}:{settings.inbox_port}"


def bind(settings: Settings) -> socket.socket:
    """The inbox's listening socket; a busy or bad address is a `ConfigError` (uvicorn would exit)."""
    family = socket.AF_INET6 if ":" in settings.inbox_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.inbox_host, settings.inbox_port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"cannot serve the inbox on {settings.inbox_host}:{settings.inbox_port}: "
            f"{err.strerror} (set AIRLOCK_INBOX_PORT)"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(app: Starlette, settings: Settings, stop: asyncio.Event, sock: socket.socket | None = None) -> None:
    """Serve `app` on the inbox address until `stop` is set (the TCP peer decides who the proxy is)."""
    await serve_app(app, sock or bind(settings), stop)
