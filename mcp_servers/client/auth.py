"""MCP authorization for HTTP servers: the mcp SDK's OAuth providers, fed from `servers.toml`.

The SDK does discovery (protected-resource and authorization-server metadata), registration
(pre-registered, CIMD or dynamic), PKCE, resource indicators, refresh and scope step-up; this
module picks the provider a server's `[servers.X.oauth]` table means, keeps tokens in a file on
the worker host (mode 0600), and turns a failure into one line naming the server and the reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx2
import structlog
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthTokenError
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.utils import issuers_match
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
)
from pydantic import ValidationError

from mcp_servers.client.config import OAuthConfig, ServerConfig, expand
from mcp_servers.client.errors import LoginRequiredError

TOKEN_DIR_VARIABLE = "AIRLOCK_OAUTH_DIR"
CLIENT_NAME = "airlock"
MAX_REASON = 300

log = structlog.get_logger(__name__)


def default_token_dir(environ: Mapping[str, str]) -> Path:
    """Where OAuth tokens live on the worker host: `AIRLOCK_OAUTH_DIR`, else under ~/.local/state."""
    configured = environ.get(TOKEN_DIR_VARIABLE)
    if configured:
        return Path(configured)
    return Path(environ.get("HOME", str(Path.home()))) / ".local" / "state" / "airlock" / "oauth"


class FileTokenStorage:
    """The SDK's `TokenStorage` in one JSON file per server, written atomically with mode 0600.

    Tokens and client credentials stay on the worker host: never in history, logs or prompts.
    """

    def __init__(self, path: Path, on_secret: Callable[[str | None], None] | None = None) -> None:
        self.path = path
        # Told every token and client secret this storage holds, so the worker can scrub them.
        self._on_secret = on_secret

    def _tell(self, *values: str | None) -> None:
        if self._on_secret is not None:
            for value in values:
                self._on_secret(value)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)

    @property
    def expires_at(self) -> float | None:
        """When the stored access token expires (seconds since the epoch), if the server said."""
        value = self._read().get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def get_tokens(self) -> OAuthToken | None:
        """The stored tokens, if any."""
        raw = self._read().get("tokens")
        tokens = OAuthToken.model_validate(raw) if raw else None
        if tokens is not None:
            self._tell(tokens.access_token, tokens.refresh_token)
        return tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        """Store new tokens and when they expire."""
        self._tell(tokens.access_token, tokens.refresh_token)
        data = self._read()
        data["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        data["expires_at"] = time.time() + tokens.expires_in if tokens.expires_in else None
        self._write(data)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """The stored client registration, if any."""
        raw = self._read().get("client")
        info = OAuthClientInformationFull.model_validate(raw) if raw else None
        if info is not None:
            self._tell(info.client_secret)
        return info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Store the client registration (dynamic or CIMD)."""
        self._tell(client_info.client_secret)
        data = self._read()
        data["client"] = client_info.model_dump(mode="json", exclude_none=True)
        self._write(data)

    @property
    def authorization_server(self) -> OAuthMetadata | None:
        """The authorization server a person's first login recorded (its metadata), if any."""
        raw = self._read().get("authorization_server")
        try:
            return OAuthMetadata.model_validate(raw) if isinstance(raw, dict) else None
        except ValidationError:
            return None

    def record_authorization_server(self, metadata: OAuthMetadata) -> None:
        """Pin the authorization server of this login: later flows send nothing to another one."""
        data = self._read()
        data["authorization_server"] = metadata.model_dump(mode="json", exclude_none=True)
        self._write(data)


class _StoredExpiry:
    """Restores a stored token's expiry, so a restarted worker refreshes before it is refused."""

    context: Any
    _initialized: bool

    async def _initialize(self) -> None:
        await super()._initialize()  # type: ignore[misc]
        storage = self.context.storage
        if isinstance(storage, FileTokenStorage):
            self.context.token_expiry_time = storage.expires_at


class _MetadataAuthMethod(ClientCredentialsOAuthProvider):
    """Client credentials whose secret goes as the authorization server's metadata asks."""

    def __init__(self, *args: Any, fixed_method: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fixed_method = fixed_method

    async def _exchange_token_client_credentials(self) -> httpx2.Request:
        metadata, info = self.context.oauth_metadata, self.context.client_info
        if not self._fixed_method and metadata is not None and info is not None:
            offered = metadata.token_endpoint_auth_methods_supported or ["client_secret_basic"]
            if "client_secret_basic" not in offered and "client_secret_post" in offered:
                info.token_endpoint_auth_method = "client_secret_post"
        return await super()._exchange_token_client_credentials()


class ClientCredentials(_StoredExpiry, _MetadataAuthMethod):
    """Client credentials (`client_secret_basic` or `client_secret_post`) for a service."""


class PrivateKeyJwt(_StoredExpiry, PrivateKeyJWTOAuthProvider):
    """Client credentials authenticated with a signed JWT (RFC 7523)."""


class AuthorizationCode(_StoredExpiry, OAuthClientProvider):
    """Authorization code with PKCE: a person logs in once, then the tokens are refreshed.

    The authorization server is pinned: the configured `issuer`, else the one the first login
    found (shown to the person and recorded with the tokens). A server whose metadata later names
    another one gets nothing from Airlock there: no registration, no person, no code, no token.
    """

    def __init__(self, *args: Any, issuer: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinned = issuer

    async def _initialize(self) -> None:
        await super()._initialize()
        storage = self.context.storage
        recorded = storage.authorization_server if isinstance(storage, FileTokenStorage) else None
        if recorded is not None and (self._pinned is None or issuers_match(str(recorded.issuer), self._pinned)):
            self._pinned = str(recorded.issuer)
            # Refreshing after a restart then goes to the pinned server's own token endpoint.
            self.context.oauth_metadata = recorded
            self.context.auth_server_url = self._pinned

    def _select_authorization_server(self, advertised: list[str]) -> str:
        if self._pinned is None:
            return advertised[0]
        for server in advertised:
            if issuers_match(server, self._pinned):
                return server
        raise OAuthFlowError(
            f"the server names authorization server {advertised[0][:MAX_REASON]!r}, not the pinned "
            f"{self._pinned!r}: nothing was sent there (if the move is expected, set that issuer in the "
            "server's oauth table and run `airlock mcp login` again)"
        )

    def _check_pinned(self) -> None:
        metadata = self.context.oauth_metadata
        if self._pinned is None:
            return
        if metadata is None or not issuers_match(str(metadata.issuer), self._pinned):
            found = str(metadata.issuer) if metadata is not None else "none"
            raise OAuthFlowError(
                f"no metadata of the pinned authorization server {self._pinned!r} (found {found[:MAX_REASON]!r})"
            )

    async def _perform_authorization_code_grant(self) -> tuple[str, str]:
        self._check_pinned()
        metadata = self.context.oauth_metadata
        if self._pinned is None and metadata is not None:
            # Shown before the person is sent there; recorded once the login succeeds.
            log.warning(
                "mcp_oauth_issuer_discovered",
                issuer=str(metadata.issuer),
                why="no issuer is configured: this one is recorded on login and required from then on",
            )
        return await super()._perform_authorization_code_grant()

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        await super()._handle_token_response(response)
        storage, metadata = self.context.storage, self.context.oauth_metadata
        if isinstance(storage, FileTokenStorage) and metadata is not None:
            self._check_pinned()
            storage.record_authorization_server(metadata)
            self._pinned = str(metadata.issuer)

    async def _refresh_token(self) -> httpx2.Request:
        try:
            self._check_pinned()
        except OAuthFlowError as err:
            raise OAuthTokenError(str(err)) from None
        return await super()._refresh_token()


Redirect = Callable[[str], Awaitable[None]]
Callback = Callable[[], Awaitable[AuthorizationCodeResult]]


async def _login_required_redirect(url: str) -> None:
    raise LoginRequiredError("a person must log in once: run `airlock mcp login SERVER` on the worker host")


async def _no_callback() -> AuthorizationCodeResult:
    raise LoginRequiredError("a person must log in once: run `airlock mcp login SERVER` on the worker host")


def client_metadata(oauth: OAuthConfig, redirect_uri: str) -> OAuthClientMetadata:
    """What Airlock registers (dynamically) as a client for the authorization code flow."""
    return OAuthClientMetadata(
        client_name=CLIENT_NAME,
        redirect_uris=[redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=oauth.scope,
    )


def redirect_uri(port: int) -> str:
    """The loopback redirect `airlock mcp login` listens on."""
    return f"http://127.0.0.1:{port}/callback"


def provider_for(
    name: str,
    config: ServerConfig,
    environ: Mapping[str, str],
    token_dir: Path | None,
    *,
    redirect: Redirect | None = None,
    callback: Callback | None = None,
    port: int | None = None,
    on_secret: Callable[[str | None], None] | None = None,
) -> httpx2.Auth | None:
    """The SDK auth provider for server `name` (None without an `oauth` table).

    The worker passes no `redirect`/`callback`: a server that needs a person then fails with
    `LoginRequiredError` instead of waiting for a browser nobody will open.
    """
    oauth = config.oauth
    if oauth is None:
        return None
    assert config.url is not None
    storage = FileTokenStorage((token_dir or default_token_dir(environ)) / f"{name}.json", on_secret)
    kind = oauth.kind
    if kind == "client_credentials":
        assert oauth.client_id is not None and oauth.client_secret is not None
        return ClientCredentials(
            server_url=config.url,
            storage=storage,
            client_id=oauth.client_id,
            client_secret=expand(oauth.client_secret, environ),
            token_endpoint_auth_method=oauth.token_endpoint_auth_method or "client_secret_basic",
            fixed_method=oauth.token_endpoint_auth_method is not None,
            scope=oauth.scope,
            issuer=oauth.issuer,
        )
    if kind == "private_key_jwt":
        assert oauth.client_id is not None and oauth.private_key is not None
        signer = SignedJWTParameters(
            issuer=oauth.client_id,
            subject=oauth.client_id,
            signing_key=expand(oauth.private_key, environ),
            signing_algorithm=oauth.signing_algorithm,
        )
        return PrivateKeyJwt(
            server_url=config.url,
            storage=storage,
            client_id=oauth.client_id,
            assertion_provider=signer.create_assertion_provider(),
            scope=oauth.scope,
            issuer=oauth.issuer,
        )
    provider = AuthorizationCode(
        server_url=config.url,
        client_metadata=client_metadata(oauth, redirect_uri(port if port is not None else oauth.redirect_port)),
        storage=storage,
        redirect_handler=redirect or _login_required_redirect,
        callback_handler=callback or _no_callback,
        client_metadata_url=oauth.client_metadata_url,
        issuer=oauth.issuer,
    )
    return provider


def sends_unpinned_credentials(config: ServerConfig) -> bool:
    """Whether the worker sends client credentials to whichever authorization server the MCP server names.

    True for the client-credentials flows without `issuer`: the server's protected-resource
    metadata then decides where the secret (or signed assertion) goes.
    """
    oauth = config.oauth
    return oauth is not None and oauth.kind in ("client_credentials", "private_key_jwt") and oauth.issuer is None


async def preregister(name: str, config: ServerConfig, environ: Mapping[str, str], token_dir: Path, uri: str) -> None:
    """Store a pre-registered `client_id` (and secret) so the flow skips registration."""
    oauth = config.oauth
    if oauth is None or oauth.client_id is None or oauth.kind != "authorization_code":
        return
    storage = FileTokenStorage(token_dir / f"{name}.json")
    secret = expand(oauth.client_secret, environ) if oauth.client_secret else None
    await storage.set_client_info(
        OAuthClientInformationFull(
            client_id=oauth.client_id,
            client_secret=secret,
            redirect_uris=[uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        )
    )


def _leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for inner in err.exceptions for leaf in _leaves(inner)]
    return [err]


def _challenge(response: httpx2.Response) -> str:
    header = response.headers.get("www-authenticate", "")
    parts = dict(
        (key.strip().lower(), value.strip().strip('"'))
        for key, _, value in (item.partition("=") for item in header.replace("Bearer ", "", 1).split(","))
        if value
    )
    reason = parts.get("error_description") or parts.get("error") or ""
    if not reason:
        reason = "unauthorized" if response.status_code == 401 else "forbidden"
    return reason[:MAX_REASON]


def refusal(name: str, response: httpx2.Response) -> str:
    """ "401 unauthorized from server X: reason" for a refused HTTP response."""
    word = "unauthorized" if response.status_code == 401 else "forbidden"
    return f"{response.status_code} {word} from server {name!r}: {_challenge(response)}"


def describe_failure(name: str, err: BaseException) -> str:
    """One line for a failed connection or call: for a 401/403, the server and the reason.

    Task groups wrap the real failure in `ExceptionGroup`s; the leaf is what an operator needs.
    """
    leaves = [leaf for leaf in _leaves(err) if not isinstance(leaf, GeneratorExit)] or [err]
    for leaf in leaves:
        if isinstance(leaf, httpx2.HTTPStatusError) and leaf.response.status_code in (401, 403):
            return refusal(name, leaf.response)
        if isinstance(leaf, OAuthFlowError):
            return f"authorization with server {name!r} failed: {str(leaf)[:MAX_REASON]}"
    leaf = leaves[0]
    if isinstance(leaf, httpx2.HTTPStatusError):
        return f"HTTP {leaf.response.status_code} from server {name!r}"
    text = str(leaf)[:MAX_REASON]
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__
