"""The Temporal client connection, made from settings: one place for the worker and the CLI."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError

from workflows.converter import data_converter
from workflows.errors import ConfigError
from workflows.settings import Settings

CONNECT_TIMEOUT_SECONDS = 15


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal service, failing fast with a readable message."""
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    converter = data_converter(settings)  # a bad keys file stops here, before any connection
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace, tls=tls,
                api_key=api_key, data_converter=converter,
            ),
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except (RPCError, RuntimeError, TimeoutError, OSError) as err:
        raise ConfigError(
            f"cannot reach Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace}): {err}. Start one, or run `python worker.py --dev`."
        ) from None
