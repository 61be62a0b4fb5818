"""Who is asking, and may they: the proxy's identity header, the dev identity, Host/Origin and CSRF.

People are authenticated in front of the inbox by a reverse proxy (oauth2-proxy, Pomerium) that
sets a header; the header is believed only on connections from the configured proxy addresses.
`python worker.py --dev` uses a fixed dev identity instead, shown on every page as such.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from activities.approvers import NAME
from console.errors import ConsoleError


class NotAuthenticatedError(ConsoleError):
    """The request carries no identity the inbox believes; the message says why."""


class ForbiddenError(ConsoleError):
    """The request is refused before it reaches a run (bad Host, Origin or CSRF token)."""


@dataclass(frozen=True)
class Person:
    """The authenticated person, and whether that is only the dev identity."""

    name: str
    dev: bool = False


class Gatekeeper:
    """Checks every request: where it is addressed, who sent it, and that a POST is our own form."""

    def __init__(
        self,
        *,
        identity_header: str,
        trusted_proxies: list[str],
        allowed_hosts: list[str],
        dev_identity: str | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.identity_header = identity_header.lower()
        self.trusted = [ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies]
        self.allowed_hosts = {host.lower() for host in allowed_hosts}
        self.dev_identity = dev_identity
        # Per process: a restart makes open pages fetch a fresh token, which is a reload away.
        self._secret = secret or secrets.token_bytes(32)

    def check_host(self, request: Request) -> None:
        """The Host header names this inbox (a DNS-rebinding page cannot talk to it)."""
        host = request.headers.get("host", "").lower()
        if host not in self.allowed_hosts:
            raise ForbiddenError(f"unexpected Host {host[:100]!r}")

    def person(self, request: Request) -> Person:
        """The person behind the request, or `NotAuthenticatedError`."""
        if self.dev_identity is not None:
            return Person(self.dev_identity, dev=True)
        # The TCP peer as the server accepted it (`serve` runs uvicorn without proxy_headers), never
        # an address a header claims: anyone can send X-Forwarded-For naming the proxy.
        peer = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            raise NotAuthenticatedError("the connection has no peer address") from None
        if not any(address in network for network in self.trusted):
            raise NotAuthenticatedError(f"{peer} is not a trusted proxy (AIRLOCK_INBOX_TRUSTED_PROXIES)")
        values = request.headers.getlist(self.identity_header)
        if len(values) != 1 or not values[0].strip():
            raise NotAuthenticatedError(f"no single {self.identity_header} header from the proxy")
        name = values[0].strip()
        if not NAME.match(name):
            raise NotAuthenticatedError("the identity header is not a name approvers.toml can hold")
        return Person(name)

    def check_origin(self, request: Request) -> None:
        """A POST comes from a page of this inbox: its Origin (or Referer) is one of our hosts."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or origin == "null":
            raise ForbiddenError("a POST must say where it comes from (Origin)")
        if urlsplit(origin).netloc.lower() not in self.allowed_hosts:
            raise ForbiddenError("cross-site POST refused")

    def csrf_token(self, person: Person) -> str:
        """The token our forms carry for `person`."""
        return hmac.new(self._secret, person.name.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, person: Person, token: str) -> None:
        """The token is the one our form gave this person."""
        if not hmac.compare_digest(self.csrf_token(person), token):
            raise ForbiddenError("missing or wrong CSRF token (reload the page)")


def default_hosts(host: str, port: int) -> list[str]:
    """The Host values a loopback inbox answers to: its bind address and localhost, with the port."""
    names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") else {host}
    return sorted(f"[{name}]:{port}" if ":" in name else f"{name}:{port}" for name in names)
