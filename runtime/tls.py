"""Client TLS to Temporal from settings: which files, which mistakes, and what a refusal means.

One place for the worker and the `airlock` CLI. Mistakes in the settings stop the process before
it dials, naming the setting and the file; a refused handshake is explained in the operator's
terms (which setting to change), since the TLS library's own words name no setting.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.service import TLSConfig

from mcp_servers.tomlfiles import ConfigError
from runtime.settings import Settings

CERT, KEY = "AIRLOCK_TEMPORAL_TLS_CERT", "AIRLOCK_TEMPORAL_TLS_KEY"
CA, SERVER_NAME, TLS = "AIRLOCK_TEMPORAL_TLS_CA", "AIRLOCK_TEMPORAL_TLS_SERVER_NAME", "AIRLOCK_TEMPORAL_TLS"
# Larger than any certificate bundle; a bigger file is the wrong file.
MAX_PEM_BYTES = 1_000_000


def client_tls(settings: Settings) -> TLSConfig | bool:
    """The TLS to dial Temporal with, or False for plaintext.

    `AIRLOCK_TEMPORAL_TLS` unset means: TLS when anything TLS-specific or an API key is set
    (Temporal Cloud's API-key endpoints take TLS only), plaintext otherwise.
    """
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        given, missing = (CERT, KEY) if cert is not None else (KEY, CERT)
        raise ConfigError(
            f"{given} is set but {missing} is not: a client certificate (mTLS) needs both {CERT} and {KEY}"
        )
    specific = {
        name: value
        for name, value in (
            (CERT, cert),
            (CA, settings.temporal_tls_ca),
            (SERVER_NAME, settings.temporal_tls_server_name),
        )
        if value is not None
    }
    if settings.temporal_tls is False:
        if specific:
            raise ConfigError(f"{TLS}=false, but {', '.join(specific)} is set: unset one or the other")
        return False
    if settings.temporal_tls is None and not specific and settings.temporal_api_key is None:
        return False
    return TLSConfig(
        server_root_ca_cert=_pem(CA, settings.temporal_tls_ca),
        domain=settings.temporal_tls_server_name,
        client_cert=_pem(CERT, cert),
        client_private_key=_pem(KEY, key),
    )


def _pem(setting: str, path: Path | None) -> bytes | None:
    """The PEM file a setting names, or a ConfigError naming the setting and the file."""
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_PEM_BYTES:
            raise ConfigError(f"{setting}={path}: larger than {MAX_PEM_BYTES} bytes, not a PEM file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{setting}={path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}={path}: is a directory, not a PEM file") from None
    except PermissionError:
        raise ConfigError(f"{setting}={path}: not readable by this user") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{setting}={path}: not a PEM file (no '-----BEGIN' line)")
    return data


REQUIRES_CLIENT_CERT = f"it requires a client certificate (mTLS): set {CERT} and {KEY}"
DISTRUSTS_CLIENT_CERT = f"it does not trust the client certificate ({CERT}): it wants one signed by its client CA"

# What the TLS stack (rustls, under Temporal's core) says, and what the operator should change.
_HINTS: tuple[tuple[str, str], ...] = (
    ("CertificateRequired", f"The server refused the handshake: {REQUIRES_CLIENT_CERT}"),
    ("received fatal alert: UnknownCA", f"The server refused the handshake: {DISTRUSTS_CLIENT_CERT}"),
    ("received fatal alert: BadCertificate", f"The server refused the client certificate ({CERT})"),
    ("received fatal alert: CertificateUnknown", f"The server refused the client certificate ({CERT})"),
    ("KeyMismatch", f"{KEY} is not the private key of {CERT}"),
    (
        "NotValidFor",
        f"The server's certificate does not carry the host dialled: set {SERVER_NAME} to a name it carries",
    ),
    ("Expired", "The server's certificate has expired (or this host's clock is wrong)"),
    ("InvalidContentType", f"The server does not speak TLS: unset {TLS} and the TLS files, or dial its TLS port"),
)
# A refusal right after the handshake sometimes reaches the HTTP/2 client only as a closed
# connection, without the server's alert (a race inside the client): say what it most likely means.
_CLOSED = ("connection closed", "transport error", "broken pipe")


def refusal_hint(error: str, settings: Settings, tls: bool) -> str | None:
    """A sentence saying what to change, in settings' names, for connection error `error`; None if unknown."""
    closed = any(marker in error.lower() for marker in _CLOSED)
    if not tls:
        if closed:
            return f"The server closed the connection: if it takes TLS only, set {TLS}=true (and {CA} if needed)"
        return None
    if "UnknownIssuer" in error:
        if settings.temporal_tls_ca is not None:
            return f"The server's certificate is not signed by {CA}={settings.temporal_tls_ca}"
        return f"The server's certificate is not signed by a CA this host trusts: set {CA} to the CA that signed it"
    for marker, hint in _HINTS:
        if marker in error:
            return hint
    if closed:
        likely = DISTRUSTS_CLIENT_CERT if settings.temporal_tls_cert is not None else REQUIRES_CLIENT_CERT
        return f"The server closed the connection after the TLS handshake; most likely {likely}"
    return None
