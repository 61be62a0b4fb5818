"""`airlock codec-server`: Temporal's codec-server protocol over HTTP, for the Web UI and `temporal`.

`POST /encode` and `POST /decode` (also under a namespace segment, `/{namespace}/decode`, for the
CLI's endpoint templating) take and answer `{"payloads": [...]}`, each payload in protobuf JSON
(`metadata` values and `data` base64). Decoding opens what the worker sealed (workflows/codec);
a payload that is not encrypted comes back as it is. Every request needs
`Authorization: Bearer <token>` (401 otherwise); browsers may call it only from the configured
Web UI origins (CORS, never `*`). Bodies are bounded; anything malformed is a 4xx that names the
problem, never a key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload

from console.errors import ConsoleError
from mcp_servers.tomlfiles import ConfigError
from runtime.codec import EncryptionCodec, PayloadDecryptionError, read_secret_file
from runtime.settings import Settings

log = structlog.get_logger("airlock.codec_server")

# What the Web UI and `temporal --codec-endpoint` send besides the body (the Web UI adds
# Authorization-Extras, the login's id token, when it passes its access token).
ALLOWED_HEADERS = ("Authorization", "Authorization-Extras", "Content-Type", "X-Namespace")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
MIN_TOKEN_CHARS = 16
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_SHOWN = 120
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# A request's work is bounded by its count of payloads and metadata entries, not only its bytes:
# 2 MiB of `{}` is 600,000 payloads, seconds of CPU for one token holder. The Web UI and
# `temporal` send one event's payloads at a time, a handful each with a few metadata entries.
MAX_PAYLOADS = 1_000
MAX_METADATA = 32


class BadRequestError(ConsoleError):
    """A request body that is not a codec request; the message says what is wrong (HTTP 400)."""


class BodyTooLargeError(ConsoleError):
    """A request body over the byte, payload or metadata limit (HTTP 413); the message says which."""


def make_app(codec: EncryptionCodec, *, token: str, origins: Sequence[str], max_body_bytes: int) -> Starlette:
    """The codec server as an ASGI app: bearer auth, bounded bodies, CORS for `origins` only."""
    expected = token.encode()

    def handler(
        work: Callable[[list[Payload]], Awaitable[list[Payload]]], name: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            namespace = request.path_params.get("namespace") or request.headers.get("X-Namespace", "")
            if not _authorized(request.headers.get("Authorization", ""), expected):
                log.warning("codec request refused", op=name, namespace=namespace[:_SHOWN], status=401)
                return _error(
                    401,
                    "a bearer token is required (Authorization: Bearer <token>)",
                    {"WWW-Authenticate": 'Bearer realm="airlock-codec"'},
                )
            try:
                payloads = parse(await _body(request, max_body_bytes))
                answered = await work(payloads)
            except BodyTooLargeError as err:
                return _error(413, str(err) or f"request body over {max_body_bytes} bytes")
            except BadRequestError as err:
                return _error(400, str(err))
            except PayloadDecryptionError as err:
                # Names a key id at most: the codec's messages never carry key material.
                return _error(400, str(err))
            except ClientDisconnect:
                return _error(400, "the client went away mid-request")
            log.info("codec request", op=name, namespace=namespace[:_SHOWN], payloads=len(payloads), status=200)
            return JSONResponse({"payloads": [render(p) for p in answered]}, headers=NO_STORE)

        return endpoint

    encode = handler(codec.encode, "encode")
    decode = handler(codec.decode_strict, "decode")
    routes = [
        Route("/encode", encode, methods=["POST"]),
        Route("/decode", decode, methods=["POST"]),
        Route("/{namespace}/encode", encode, methods=["POST"]),
        Route("/{namespace}/decode", decode, methods=["POST"]),
    ]
    # Outermost, so a preflight (which carries no token) is answered, and errors carry CORS headers too.
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["POST"],
        allow_headers=list(ALLOWED_HEADERS),
        allow_credentials=True,
        max_age=600,
    )
    return Starlette(routes=routes, middleware=[cors])


def _authorized(header: str, expected: bytes) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers={**NO_STORE, **(headers or {})})


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    # Read as it streams: a body without (or lying about) its length stops at the limit too.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes) -> list[Payload]:
    """The payloads of a codec request body `{"payloads": [{"metadata": {...}, "data": "..."}]}`."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequestError("the body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads", []), list):
        raise BadRequestError('the body must be a JSON object {"payloads": [...]}')
    if len(document.get("payloads", [])) > MAX_PAYLOADS:
        raise BodyTooLargeError(f"more than {MAX_PAYLOADS} payloads in one request")
    payloads = []
    for index, item in enumerate(document.get("payloads", [])):
        where = f"payloads[{index}]"
        if not isinstance(item, dict):
            raise BadRequestError(f"{where} is not an object")
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequestError(f"{where}.metadata is not an object")
        if len(metadata) > MAX_METADATA:
            raise BodyTooLargeError(f"{where}.metadata has more than {MAX_METADATA} entries")
        fields = {key: _b64(value, f"{where}.metadata.{key[:_SHOWN]}") for key, value in metadata.items()}
        payloads.append(Payload(metadata=fields, data=_b64(item.get("data", ""), f"{where}.data")))
    return payloads


def _b64(value: object, where: str) -> bytes:
    # protobuf JSON: standard or URL-safe alphabet, padding optional; anything else is refused
    # rather than skipped over, as lenient decoders do.
    if not isinstance(value, str) or not _BASE64.match(value):
        raise BadRequestError(f"{where} is not base64")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{where} is not base64") from None


def render(payload: Payload) -> dict[str, Any]:
    """`payload` in protobuf JSON, as the codec-server protocol answers it."""
    return {
        "metadata": {key: base64.b64encode(value).decode() for key, value in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def token(settings: Settings, token_file: Path | None = None) -> str:
    """The bearer token requests must carry: from `token_file`, the token file setting, or the token setting."""
    path = token_file or settings.codec_server_token_file
    if path is not None:
        value = read_secret_file(path, "--token-file" if token_file else "AIRLOCK_CODEC_SERVER_TOKEN_FILE")
        text = value.decode(errors="replace").strip()
        source = str(path)
    elif settings.codec_server_token is not None:
        text = settings.codec_server_token.get_secret_value().strip()
        source = "AIRLOCK_CODEC_SERVER_TOKEN"
    else:
        raise ConfigError(
            "the codec server decodes secrets for whoever asks: give it a bearer token with "
            "--token-file PATH (mode 0600) or AIRLOCK_CODEC_SERVER_TOKEN"
        )
    if len(text) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{source}: the token is shorter than {MIN_TOKEN_CHARS} characters (make one: `openssl rand -hex 32`)"
        )
    return text


def origins(values: Sequence[str]) -> list[str]:
    """The Web UI origins allowed to call from a browser, checked: scheme://host[:port], never `*`."""
    for origin in values:
        if origin == "*":
            raise ConfigError(
                "codec server origins: `*` would let any web page ask it to decode; list the "
                "Web UI's origin (e.g. http://localhost:8233)"
            )
        if not ORIGIN.match(origin):
            raise ConfigError(
                f"codec server origins: {origin[:_SHOWN]!r} is not an origin (scheme://host[:port], no path)"
            )
    return list(values)


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket; a busy or bad address is a `ConfigError` naming it."""
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as err:
        raise ConfigError(
            f"cannot serve the codec server on {host}:{port}: {err.strerror} (set --port or AIRLOCK_CODEC_SERVER_PORT)"
        ) from None
    sock.setblocking(False)
    return sock
