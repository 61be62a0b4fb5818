"""The Temporal client connection, made from settings: one place for the worker and the CLI.

Where to connect comes from `AIRLOCK_TEMPORAL_*` when set, else from the profile the `temporal`
CLI and every Temporal SDK read (`temporalio.envconfig`: `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, the `temporal.toml` that
`TEMPORAL_CONFIG_FILE` names or the default one, its profile `TEMPORAL_PROFILE`), else Airlock's
defaults (`localhost:7233`, `default`).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, DataSource
from temporalio.service import RPCError

from mcp_servers.tomlfiles import ConfigError
from runtime import tls
from runtime.converter import data_converter
from runtime.settings import Settings

CONNECT_TIMEOUT_SECONDS = 15


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal service (`with_profile`), failing fast with a readable message."""
    settings = with_profile(settings)
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


# The settings a profile may fill in, and the TLS ones that go together: one AIRLOCK_TEMPORAL_TLS*
# set means Airlock's TLS settings decide TLS, none of the profile's is mixed in.
_TLS_FIELDS = (
    "temporal_tls",
    "temporal_tls_cert",
    "temporal_tls_key",
    "temporal_tls_ca",
    "temporal_tls_server_name",
)


def with_profile(settings: Settings) -> Settings:
    """`settings` with the Temporal connection completed from the `temporalio.envconfig` profile.

    A connection setting given explicitly (an `AIRLOCK_TEMPORAL_*` variable, or a field passed
    in, as the CLI's `--address` and `--namespace` are) wins; the profile fills only the others.
    Applying it twice changes nothing. A configuration file that is named but missing or
    unreadable, or a profile it does not have, is a ConfigError naming it.
    """
    profile = load_profile()
    given = settings.model_fields_set
    update: dict[str, Any] = {}
    if profile.address and "temporal_address" not in given:
        update["temporal_address"] = profile.address
    if profile.namespace and "temporal_namespace" not in given:
        update["temporal_namespace"] = profile.namespace
    if profile.api_key and "temporal_api_key" not in given:
        update["temporal_api_key"] = SecretStr(profile.api_key)
    if profile.tls is not None and not given.intersection(_TLS_FIELDS):
        update.update(_tls_settings(profile.tls))
    return settings.model_copy(update=update) if update else settings


def load_profile() -> ClientConfigProfile:
    """The Temporal profile of this environment (file and `TEMPORAL_*` variables), or a ConfigError."""
    named = os.environ.get("TEMPORAL_CONFIG_FILE")
    if named and not Path(named).is_file():
        # envconfig reads a missing file as empty: a mistyped path would quietly mean localhost.
        raise ConfigError(f"TEMPORAL_CONFIG_FILE={named}: no such file")
    try:
        return ClientConfigProfile.load()
    except RuntimeError as err:  # the SDK's ConfigError: unreadable TOML, unknown profile
        where = named or "the default temporal.toml"
        profile = os.environ.get("TEMPORAL_PROFILE", "default")
        raise ConfigError(f"Temporal profile {profile!r} in {where}: {err}") from None


def _tls_settings(profile: ClientConfigTLS) -> dict[str, Any]:
    """The TLS settings a profile's `[profile.X.tls]` gives."""
    if profile.disabled:
        return {"temporal_tls": False}
    return {
        "temporal_tls": True,
        "temporal_tls_server_name": profile.server_name,
        "temporal_tls_ca": _path("server_ca_cert", profile.server_root_ca_cert),
        "temporal_tls_cert": _path("client_cert", profile.client_cert),
        "temporal_tls_key": _path("client_key", profile.client_private_key),
    }


def _path(key: str, source: DataSource | None) -> Path | None:
    # Airlock's TLS settings are files, checked and named as such (runtime/tls.py).
    if source is None or isinstance(source, Path):
        return source
    raise ConfigError(f"the Temporal profile's tls {key} is given inline; give it as {key}_path (a file) instead")
