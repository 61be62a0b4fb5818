"""The tickets server's HTTP guard: a bearer token on every request, and Host/Origin checks always on.

Over stdio only the worker that started the server can talk to it; over HTTP anyone who reaches
the port can. So HTTP requires `Authorization: Bearer $TICKETS_TOKEN` (compared in constant time),
and the mcp SDK's DNS-rebinding protection (`TransportSecuritySettings`: the Host header must name
this server, a browser's Origin must be this server's) is on for every bind address — the SDK
turns it on only for loopback binds, which would leave `--host 0.0.0.0` open to a web page that
rebinds its own name to this host.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "TICKETS_TOKEN"
ALLOWED_HOSTS_ENV = "TICKETS_ALLOWED_HOSTS"
MIN_TOKEN_LENGTH = 16
# RFC 6750 `b64token`: what may follow "Bearer " in a header without quoting.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A host name or address as a Host header carries it, optionally with a port or `:*` (any port).
_HOST = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}|\*))?")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


class GuardError(Exception):
    """The server cannot be served over HTTP safely as configured."""


def token_from(environ: Mapping[str, str], *, insecure_no_auth: bool) -> bytes | None:
    """The bearer token every HTTP request must carry; None only with `--insecure-no-auth`."""
    token = environ.get(TOKEN_ENV, "")
    if insecure_no_auth:
        if token:
            raise GuardError(f"{TOKEN_ENV} is set and --insecure-no-auth is given: drop one of them")
        return None
    if not token:
        raise GuardError(
            f"{TOKEN_ENV} is not set: serving over HTTP requires a bearer token "
            "(or --insecure-no-auth, for a local experiment only)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise GuardError(f"{TOKEN_ENV} has {len(token)} characters: use at least {MIN_TOKEN_LENGTH}")
    if not _B64TOKEN.fullmatch(token):
        raise GuardError(f"{TOKEN_ENV} may hold only letters, digits and -._~+/ (then '=' padding)")
    return token.encode()


def allowed_hosts(bind_host: str, configured: Iterable[str]) -> list[str]:
    """Host header values this server answers to: what it is bound to, plus `configured`.

    A wildcard or loopback bind answers to the loopback names by default; anything reached by
    another name (a DNS name, a load balancer) must be listed. An entry without a port allows
    any port, and no port at all (a proxy on 80/443).
    """
    if bind_host in _WILDCARD_BINDS or _is_loopback(bind_host):
        defaults: list[str] = list(_LOOPBACK_NAMES)
    else:
        defaults = [f"[{bind_host}]" if ":" in bind_host else bind_host]
    patterns: list[str] = []
    for entry in [*defaults, *configured]:
        match = _HOST.fullmatch(entry)
        if match is None:
            raise GuardError(
                f"allowed host {entry!r} is not a host name or address with an optional :port (no scheme, no path)"
            )
        if match.group("port") is None:
            patterns += [entry, f"{entry}:*"]
        else:
            patterns.append(entry)
    return list(dict.fromkeys(patterns))


def transport_security(bind_host: str, configured: Iterable[str]) -> TransportSecuritySettings:
    """The SDK's Host/Origin checks, on, for these hosts (an Origin is one of them over http or https)."""
    hosts = allowed_hosts(bind_host, configured)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")],
    )


def split_hosts(value: str) -> list[str]:
    """`a, b` (as in TICKETS_ALLOWED_HOSTS) is [a, b]."""
    return [part.strip() for part in value.split(",") if part.strip()]


class BearerToken:
    """ASGI middleware: answer 401 to any HTTP request without exactly one matching bearer token."""

    def __init__(self, app: ASGIApp, token: bytes) -> None:
        """Guard `app` with `token`."""
        self._app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass lifespan events and authorized requests; refuse everything else."""
        if scope["type"] == "lifespan":
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here; uvicorn closes what is not accepted
        presented = self._presented(scope)
        if presented is not None and hmac.compare_digest(presented, self._token):
            await self._app(scope, receive, send)
            return
        challenge = b'Bearer realm="tickets"' + (b', error="invalid_token"' if presented is not None else b"")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", challenge),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"missing or wrong bearer token\n"})

    @staticmethod
    def _presented(scope: Scope) -> bytes | None:
        """The token of the request's one `Authorization: Bearer` header, else None."""
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(values) != 1:
            return None
        scheme, _, token = values[0].partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return None
        return bytes(token.strip())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
