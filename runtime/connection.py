"""The Temporal client connection, made from settings: one place for the worker and the CLI."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RPCError

from mcp_servers.tomlfiles import ConfigError
from runtime import tls
from runtime.converter import data_converter
from runtime.settings import Settings

CONNECT_TIMEOUT_SECONDS = 15


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal service, failing fast with a readable message."""
    client_tls = tls.client_tls(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    converter = data_converter(settings)  # a bad keys file stops here, before any connection
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                tls=client_tls,
                api_key=api_key,
                data_converter=converter,
            ),
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except (RPCError, RuntimeError, TimeoutError, OSError) as err:
        over = " over TLS" if client_tls else ""
        hint = tls.refusal_hint(str(err), settings, tls=bool(client_tls))
        # asyncio's timeout carries no text of its own.
        reason = str(err) or f"no answer within {CONNECT_TIMEOUT_SECONDS} s"
        raise ConfigError(
            f"cannot reach Temporal at {settings.temporal_address}{over} (namespace "
            f"{settings.temporal_namespace}): {reason}. "
            + (f"{hint}." if hint else "Start one, or run `python worker.py --dev`.")
        ) from None
