"""`servers.toml`: the registry file's models, its loading, and `${VAR}` expansion on the worker."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_servers.client.limits import CircuitBreaker
from mcp_servers.tomlfiles import ConfigError, parse_duration, read_toml, validate

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# No dots: a policy rule `server.tool` splits at the first dot, so a dotted server name could
# never be told apart from a tool of another server whose own name has dots.
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
CONNECT_TIMEOUT_FLOOR_S = 10.0


def _positive_duration(value: str | float) -> str | float:
    if parse_duration(value) <= 0:
        raise ValueError("must be a positive duration")
    return value


class BreakerConfig(BaseModel):
    """One `[servers.<name>.breaker]` table: when the server's circuit opens, and for how long."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(default=5, ge=1, le=10_000)
    window: str | float = "30s"
    cooldown: str | float = "10s"

    _durations = field_validator("window", "cooldown")(_positive_duration)

    def build(self) -> CircuitBreaker:
        """A fresh breaker with these thresholds."""
        return CircuitBreaker(
            threshold=self.failures, window=parse_duration(self.window), cooldown=parse_duration(self.cooldown)
        )


OAuthFlow = Literal["client_credentials", "private_key_jwt", "authorization_code"]


class OAuthConfig(BaseModel):
    """One `[servers.<name>.oauth]` table: how the worker obtains tokens for an HTTP server.

    `client_id` + `client_secret` is client credentials; `client_id` + `private_key` is
    client credentials with a signed JWT; `flow = "authorization_code"` (or an empty table:
    discover and register dynamically) needs one `airlock mcp login`, then the worker refreshes.
    """

    model_config = ConfigDict(extra="forbid")

    flow: OAuthFlow | None = None
    client_id: str | None = Field(default=None, max_length=500)
    client_secret: str | None = None
    private_key: str | None = None
    signing_algorithm: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] | None = None
    client_metadata_url: str | None = None
    # The authorization server the credentials belong to. Without it the MCP server names where
    # they go (its protected-resource metadata), so a hostile one could collect them.
    issuer: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    scopes: list[str] = Field(default_factory=list)
    # Where `airlock mcp login` listens for the redirect (loopback only; 0 picks a free port).
    redirect_port: int = Field(default=0, ge=0, le=65535)

    @model_validator(mode="after")
    def _one_flow(self) -> OAuthConfig:
        if self.client_secret is not None and self.private_key is not None:
            raise ValueError("give 'client_secret' or 'private_key', not both")
        if self.kind in ("client_credentials", "private_key_jwt") and not self.client_id:
            raise ValueError("client credentials need 'client_id'")
        if self.flow == "client_credentials" and self.client_secret is None:
            raise ValueError("flow 'client_credentials' needs 'client_secret' (or 'private_key')")
        return self

    @property
    def kind(self) -> OAuthFlow:
        """The flow this table means, spelled out or inferred from its keys."""
        if self.private_key is not None:
            return "private_key_jwt"
        if self.flow is not None:
            return self.flow
        return "client_credentials" if self.client_secret is not None else "authorization_code"

    @property
    def scope(self) -> str | None:
        """Scopes as the token request spells them (None: from `WWW-Authenticate` or metadata)."""
        return " ".join(self.scopes) or None


class ServerConfig(BaseModel):
    """One `[servers.<name>]` table."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    trust: Literal["trusted", "untrusted"] = "untrusted"
    idempotency_keys: bool = False
    timeout: str | float = "30s"
    max_concurrency: int = Field(default=16, ge=1, le=10_000)
    rate_limit: float | None = Field(default=None, gt=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    oauth: OAuthConfig | None = None
    # Calls may take long: read-only tools too run as heartbeating activities, so their progress
    # shows and a cancelled run cancels them within seconds (they are local activities otherwise).
    long_running: bool = False
    # Pinned tool definitions (activities/pins.py): a changed or new tool is hidden or gated;
    # unset: "hide" once the lock file pins any of this server's tools, else off.
    pins: Literal["hide", "gate", "off"] | None = None

    _timeout = field_validator("timeout")(_positive_duration)

    @model_validator(mode="after")
    def _transport_fields(self) -> ServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs 'command'")
        if self.transport == "http" and not self.url:
            raise ValueError("an http server needs 'url'")
        if self.transport == "stdio" and self.oauth is not None:
            raise ValueError("'oauth' applies to http servers only")
        return self

    @property
    def trusted(self) -> bool:
        """Whether this server's tool annotations are believed."""
        return self.trust == "trusted"

    @property
    def timeout_seconds(self) -> float:
        """Per-request timeout in seconds."""
        return parse_duration(self.timeout)

    @property
    def connect_timeout_seconds(self) -> float:
        """How long opening a session may take: `timeout`, but never less than the floor.

        A stdio server is a fresh interpreter importing the MCP SDK, which takes a second or more
        on a busy host; a short request timeout must not make such a server unreachable.
        """
        return max(self.timeout_seconds, CONNECT_TIMEOUT_FLOOR_S)

    @property
    def call_deadline_seconds(self) -> float:
        """How long one tool call may take end to end, as the activity's start-to-close timeout.

        Connecting, then the request, plus a second: the registry's own timeouts, which the
        circuit breaker counts, must fire before the activity's, which it never sees.
        """
        return self.connect_timeout_seconds + self.timeout_seconds + 1.0


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: dict[str, ServerConfig] = Field(default_factory=dict)


def load_servers(path: Path, environ: Mapping[str, str]) -> dict[str, ServerConfig]:
    """Load and check `servers.toml`; every `${VAR}` a header or OAuth key names must be set."""
    registry = validate(_RegistryFile, read_toml(path), path=path)
    for name, server in registry.servers.items():
        if not SERVER_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: key {'servers.' + name!r}: a server name must match {SERVER_NAME.pattern} "
                "(lower-case letters, digits, '_' and '-'; no dots)"
            )
        for key, var in _references(server):
            if var not in environ:
                raise ConfigError(
                    f"{path}: key 'servers.{name}.{key}': environment variable {var!r} is not set on the worker"
                )
    return registry.servers


def _references(config: ServerConfig) -> Iterator[tuple[str, str]]:
    """`(dotted key, variable)` for every `${VAR}` in a server's headers and OAuth secrets."""
    for header, value in config.headers.items():
        for var in _VAR.findall(value):
            yield f"headers.{header}", var
    if config.oauth is not None:
        for key in ("client_secret", "private_key"):
            for var in _VAR.findall(getattr(config.oauth, key) or ""):
                yield f"oauth.{key}", var


# A stdio `env` variable whose name says it holds a credential (`GH_TOKEN`, `DB_PASSWORD`).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_?KEY|AUTH|COOKIE|SESSION|(^|_)KEY($|_)")


def referenced_variables(config: ServerConfig) -> list[str]:
    """Names of the worker variables a server's headers and OAuth keys expand, or its stdio `env` passes: its secrets.

    A stdio child's `env` carries what an HTTP server gets in a header (`GH_TOKEN`): echoed
    into a result, it must be scrubbed the same way. Only variables named as credentials count:
    a path or a tool name passed in `env` (`TICKETS_DB`) would otherwise be scrubbed from every
    result that mentions it.
    """
    passed = {var for var in config.env if _SECRET_NAME.search(var.upper())}
    return sorted({var for _, var in _references(config)} | passed)


def expand(value: str, environ: Mapping[str, str]) -> str:
    """Replace `${VAR}` with the worker's value; done at connect time, never stored."""
    return _VAR.sub(lambda match: environ[match.group(1)], value)
