"""A local stand-in of the Slack Web API, and a Slack-enabled test project around it.

The stand-in is a small HTTP server on loopback that implements what the bridge calls
(`chat.postMessage`, `chat.update`, `conversations.history`) and the `response_url`s of
interaction payloads (`/hooks/...`), checks the bot token, and records every call; the real
`slack_sdk.WebClient` talks to it through `base_url`. Interaction payloads are signed the way
Slack signs them (v0 HMAC-SHA256 with the signing secret, via the SDK's own signer).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from slack_sdk.signature import SignatureVerifier

from console import signing

BOT_TOKEN = "xoxb-standin-0123456789-abcdefghijklmnop"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# The channel ids the stand-in gives to channel names it is asked to post in.
CHANNEL_IDS = {"#approvals": "C0APPROVALS", "#hasty": "C0HASTY"}


@dataclass
class StandIn:
    """What the stand-in has seen: every API call, the channel's messages, the answers to clicks."""

    url: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        """The base URL to give `WebClient` (and `slack.toml`'s `api_url`)."""
        return self.url + "/api/"

    def called(self, method: str) -> list[dict[str, Any]]:
        """The bodies of every call of `method`, in order."""
        with self.lock:
            return [body for name, body in self.calls if name == method]

    def channel(self, channel_id: str) -> list[dict[str, Any]]:
        """The messages of a channel as they read now, oldest first."""
        with self.lock:
            return [m for m in self.messages.values() if m["channel"] == channel_id]

    def answered(self) -> list[str]:
        """The texts of the ephemeral answers sent to `response_url`s."""
        with self.lock:
            return [a["text"] for a in self.answers]


@contextmanager
def slack_standin() -> Iterator[StandIn]:
    """Serve the stand-in on 127.0.0.1 (a free port) until the block ends."""
    state = StandIn()
    stamps = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads `calls`."""

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path.startswith("/hooks/"):
                with state.lock:
                    state.answers.append(json.loads(raw))
                return self._reply({"ok": True})
            method = self.path.removeprefix("/api/")
            if self.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
                return self._reply({"ok": False, "error": "invalid_auth"})
            if "json" in (self.headers.get("content-type") or ""):
                body = json.loads(raw or b"{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            for key in ("blocks", "metadata"):
                if isinstance(body.get(key), str):
                    body[key] = json.loads(body[key])
            with state.lock:
                state.calls.append((method, body))
                self._reply(self._answer(method, body))

        def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
            if method == "chat.postMessage":
                channel = CHANNEL_IDS.get(body["channel"], body["channel"])
                ts = f"{int(time.time())}.{next(stamps):06d}"
                message = {"channel": channel, "ts": ts, **_shown(body)}
                state.messages[ts] = message
                return {"ok": True, "channel": channel, "ts": ts, "message": message}
            if method == "chat.update":
                message = state.messages.get(body["ts"])
                if message is None or message["channel"] != body["channel"]:
                    return {"ok": False, "error": "message_not_found"}
                message.update(_shown(body))
                return {"ok": True, "channel": body["channel"], "ts": body["ts"]}
            if method == "conversations.history":
                found = [m for m in state.messages.values() if m["channel"] == body.get("channel")]
                return {"ok": True, "messages": sorted(found, key=lambda m: m["ts"], reverse=True), "has_more": False}
            return {"ok": False, "error": "unknown_method"}

        def _reply(self, data: dict[str, Any]) -> None:
            encoded = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("text", "blocks", "metadata") if k in body}


def texts(message: dict[str, Any]) -> str:
    """Every text of a message's blocks, joined: what a person reads in it."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(found)


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    return {
        element["action_id"]: element
        for block in message.get("blocks", [])
        if block.get("type") == "actions"
        for element in block["elements"]
    }


def click(
    standin: StandIn,
    message: dict[str, Any],
    action_id: str,
    *,
    user: str,
    reason: str | None = None,
    value: str | None = None,
    hook: str = "1",
    form: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload Slack sends when `user` clicks a button of `message`.

    `form`: the state of the message's other inputs, block id -> that input's state (as Slack
    sends it: `{"type": "number_input", "value": "4"}`, `{"selected_option": {...}}`).
    """
    if value is None:
        value = buttons(message)[action_id]["value"]
    values: dict[str, Any] = {"airlock_reason": {"airlock_reason": {"type": "plain_text_input", "value": reason}}}
    values.update({block: {"value": given} for block, given in (form or {}).items()})
    state = {"values": values}
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"]},
        "trigger_id": f"{time.time_ns()}.trigger",
        "channel": {"id": message["channel"]},
        "message": {"ts": message["ts"], "metadata": message.get("metadata")},
        "state": state,
        "response_url": f"{standin.url}/hooks/{hook}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "airlock_actions",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def signed_request(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an interaction request, signed as Slack signs it."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(at if at is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }
    return body, headers


@dataclass
class SlackFiles:
    """The files of a Slack-enabled project: approvers (with Slack ids), keys, `slack.toml`."""

    approvers: Path
    slack_toml: Path
    keys: dict[str, Path]


def write_slack_files(
    root: Path,
    standin: StandIn,
    *,
    people: dict[str, str | None],
    may_assert: list[str],
    channels: dict[str, str] | None = None,
) -> SlackFiles:
    """`approvers.toml` (each person a key and maybe a Slack id; `[services.slack]`), keys and `slack.toml`."""
    keys: dict[str, Path] = {}
    entries = []
    for name in [*people, "slack"]:
        key = signing.generate_key()
        keys[name] = root / f"{name}.key"
        signing.save_private_key(key, keys[name])
        entry = signing.public_key_entry(signing.public_bytes(key))
        if name == "slack":
            entries.append(f'[services.slack]\nkeys = ["{entry}"]\nmay_assert = {json.dumps(may_assert)}')
            continue
        slack_id = people[name]
        entries.append(f'[people.{name}]\nkeys = ["{entry}"]' + (f'\nslack = "{slack_id}"' if slack_id else ""))
    approvers = root / "approvers.toml"
    approvers.write_text("\n\n".join(entries) + "\n")
    table = "".join(f'{agent} = "{channel}"\n' for agent, channel in (channels or {}).items())
    slack_toml = root / "slack.toml"
    slack_toml.write_text(
        'channel = "#approvals"\n'
        f'key_file = "{keys["slack"]}"\n'
        'inbox_url = "https://inbox.example.com"\n'
        f'state_file = "{root / "slack-state.json"}"\n'
        "interval_seconds = 0.5\n"
        f'api_url = "{standin.api_url}"\n' + (f"\n[channels]\n{table}" if table else "")
    )
    return SlackFiles(approvers, slack_toml, keys)
