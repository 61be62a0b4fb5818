"""An OAuth-protected MCP server with its own authorization server, whose tokens and metadata a test picks.

    ISSUER_EVENTS=events.jsonl python -m tests.support.issuer_mcp [--token VALUE]

- RFC 9728 metadata names this origin as the authorization server, until `POST /admin/advertise`
  (body: a URL) names another one — a server whose metadata changes after the first login.
- RFC 8414 metadata, `/register` (dynamic registration), `/authorize` (redirects at once with a
  code, state and `iss`: the person said yes), `/token` (authorization code, client credentials,
  refresh). With `--token VALUE` every access token it issues is VALUE: a hostile authorization
  server choosing the text it wants scrubbed.
- `POST /admin/revoke`: forget every access token (the next call is a 401).
- `/mcp`: streamable HTTP behind a bearer; tool `wiki_page(q)`.
Every request to the authorization server's endpoints is appended to `$ISSUER_EVENTS` (`path`),
so a test knows what reached which server. Ready line: `issuer MCP server listening on URL`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import socket
import sys
import time
from typing import Any
from urllib.parse import urlencode

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

mcp: MCPServer = MCPServer("wiki")
ACCESS: set[str] = set()
REFRESH: set[str] = set()
CODES: set[str] = set()
SETTINGS: dict[str, Any] = {"token": None, "advertise": None}


def record(**fields: Any) -> None:
    """Append one event line to `$ISSUER_EVENTS`."""
    path = os.environ.get("ISSUER_EVENTS")
    if path:
        with open(path, "a") as events:
            events.write(json.dumps({"at": time.time(), **fields}) + "\n")


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
def wiki_page(q: str) -> str:
    """Look a page up in the wiki."""
    return f"wiki page for {q}: it is documented"


def _base(request: Request) -> str:
    return f"http://{request.headers['host']}"


async def resource_metadata(request: Request) -> JSONResponse:
    """RFC 9728: the protected resource and the authorization server it names now."""
    base = _base(request)
    return JSONResponse({"resource": f"{base}/mcp", "authorization_servers": [SETTINGS["advertise"] or base]})


async def server_metadata(request: Request) -> JSONResponse:
    """RFC 8414 metadata of this authorization server."""
    record(path="/.well-known/oauth-authorization-server")
    base = _base(request)
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
        }
    )


async def register(request: Request) -> JSONResponse:
    """Dynamic client registration: any client is welcome."""
    record(path="/register")
    body = await request.json()
    return JSONResponse({**body, "client_id": f"client-{secrets.token_hex(4)}"}, status_code=201)


async def authorize(request: Request) -> Response:
    """The person said yes: back to the client's redirect URI with a code."""
    record(path="/authorize")
    params = request.query_params
    code = secrets.token_urlsafe(16)
    CODES.add(code)
    query = urlencode({"code": code, "state": params.get("state", ""), "iss": _base(request)})
    return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)


async def token(request: Request) -> JSONResponse:
    """The token endpoint: authorization code, client credentials, refresh."""
    form = await request.form()
    grant = str(form.get("grant_type"))
    record(path="/token", grant=grant)
    if grant == "authorization_code" and str(form.get("code")) not in CODES:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    if grant == "refresh_token" and str(form.get("refresh_token")) not in REFRESH:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    access = SETTINGS["token"] or secrets.token_urlsafe(24)
    refresh = secrets.token_urlsafe(24)
    ACCESS.add(access)
    REFRESH.add(refresh)
    record(path="/token", issued=access)
    return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh})


async def advertise(request: Request) -> PlainTextResponse:
    """Name another authorization server in the resource metadata from now on."""
    SETTINGS["advertise"] = (await request.body()).decode() or None
    return PlainTextResponse("ok")


async def revoke(request: Request) -> PlainTextResponse:
    """Forget every access token."""
    ACCESS.clear()
    return PlainTextResponse("ok")


class RequireBearer:
    """ASGI: `/mcp` needs a live bearer token; everything else is the authorization server."""

    def __init__(self, protected: ASGIApp, public: ASGIApp) -> None:
        self.protected = protected
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/mcp"):
            await (self.protected if scope["type"] == "lifespan" else self.public)(scope, receive, send)
            return
        headers = dict(scope["headers"])
        bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        if bearer in ACCESS:
            await self.protected(scope, receive, send)
            return
        host = headers.get(b"host", b"").decode()
        challenge = (
            f'Bearer error="invalid_token", resource_metadata="http://{host}/.well-known/oauth-protected-resource/mcp"'
        )
        response = JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)


def main() -> None:
    """Serve on a free loopback port and announce the URL on stderr."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token", help="issue this access token every time")
    args = parser.parse_args()
    SETTINGS["token"] = args.token
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
    public = Starlette(
        routes=[
            Route("/.well-known/oauth-protected-resource/mcp", resource_metadata),
            Route("/.well-known/oauth-protected-resource", resource_metadata),
            Route("/.well-known/oauth-authorization-server", server_metadata),
            Route("/register", register, methods=["POST"]),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/admin/advertise", advertise, methods=["POST"]),
            Route("/admin/revoke", revoke, methods=["POST"]),
        ]
    )
    protected = mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = uvicorn.Config(RequireBearer(protected, public), log_config=None, access_log=False, lifespan="on")
    print(f"issuer MCP server listening on http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
