"""`POST /slack/interactions`: a click on Approve, Reject, Send or Decline, checked and signed as `slack`.

Slack signs each request (v0: HMAC-SHA256 of `v0:{timestamp}:{body}` with the app's signing
secret); a request whose signature is wrong, or whose timestamp is more than five minutes off,
is refused before its body is read as anything. A payload seen before (the same bytes, or the
same action of the same user) is refused too: within the five minutes a replay would otherwise
carry a valid signature. The Slack user must be a person of `approvers.toml` (`slack = "U…"`);
the decision is then checked and signed exactly as the inbox does for its people
(`Runs.decide`), with the `[services.slack]` key, bound to the hash the message showed, and the
run verifies it like any other. Send and Decline answer a server's question (input request) the
same way, with the message's form as the content (`Runs.answer`, bound to the question's hash).
Whatever is refused changes nothing and is answered in Slack:
an ephemeral message through the payload's `response_url`, and the HTTP body.

The Host check of the inbox's pages does not apply here: it keeps a browser page from another
origin away from people's sessions, while this endpoint has no session and believes nothing but
Slack's signature (docs/slack.md: let it through the authenticating proxy).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx
import structlog
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from temporalio.service import RPCError

from activities.approvers import slack_users
from console.errors import ConsoleError, DecisionNotRecordedError
from console.inbox.forms import FormError, content_of, fields_of
from console.inbox.runs import Runs
from console.slack.bridge import Bridge
from console.slack.config import SlackConfig
from console.slack.messages import APPROVE, DECLINE, FIELD_PREFIX, FIELD_VALUE, REASON, REJECT, SEND
from mcp_servers.tomlfiles import ConfigError
from workflows.payloads import PendingApprovalView

log = structlog.get_logger("airlock.slack")

# Slack's own window: a request older (or newer) than this is refused.
WINDOW_SECONDS = 300
# Interaction payloads are a few kilobytes; anything much larger is not Slack's.
MAX_BODY_BYTES = 256 * 1024
# Remembered for replay checks: a little longer than the window, bounded in number.
MAX_SEEN = 10_000
ANSWER_TIMEOUT_SECONDS = 10.0


class RefusedInteractionError(ConsoleError):
    """A click that changes nothing; the message is what Slack shows the person."""


@dataclass
class Interactions:
    """The endpoint's state: the signature check, the replay memory, the runs and the bridge."""

    config: SlackConfig
    runs: Runs
    bridge: Bridge
    _verifier: SignatureVerifier = field(init=False)
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self._verifier = SignatureVerifier(self.config.signing_secret.get_secret_value())

    async def endpoint(self, request: Request) -> Response:
        """Answer one interaction request (Starlette endpoint)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:  # read no further than a Slack payload can be
                return PlainTextResponse("refused: the request is too large", status_code=413)
        problem = self._unsigned(
            body, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature")
        )
        if problem is not None:
            log.warning("slack interaction refused", why=problem)
            return PlainTextResponse(f"refused: {problem}", status_code=401)
        try:
            payload = _payload(body)
        except ValueError as err:
            return PlainTextResponse(f"refused: {err}", status_code=400)
        response_url = payload.get("response_url")
        try:
            self._check_fresh(body, payload)
            text = await self._decide(payload)
        except RefusedInteractionError as err:
            text = f"Nothing changed: {err}"
            log.warning("slack interaction refused", why=str(err), user=_user(payload))
        if isinstance(response_url, str) and self.config.may_answer_at(response_url):
            await _answer(response_url, text)
        return PlainTextResponse(text)

    def _unsigned(self, body: bytes, timestamp: str | None, signature: str | None) -> str | None:
        """Why the request is not Slack's signed request of the last five minutes (None: it is)."""
        if not timestamp or not signature:
            return "no Slack signature"
        try:
            stamp = int(timestamp)
        except ValueError:
            return "a malformed Slack timestamp"
        if abs(time.time() - stamp) > WINDOW_SECONDS:
            return "the Slack timestamp is more than five minutes off (an old or replayed request)"
        try:
            valid = self._verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError:
            valid = False
        return None if valid else "a bad Slack signature"

    def _check_fresh(self, body: bytes, payload: dict[str, Any]) -> None:
        """Refuse a payload seen before: the same request, or the same action of the same user."""
        now = time.monotonic()
        while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) > MAX_SEEN):
            self._seen.popitem(last=False)
        action = _action(payload)
        keys = ["body:" + hashlib.sha256(body).hexdigest()]
        if action.get("action_ts"):
            keys.append("action:" + json.dumps([_user(payload), action["action_ts"], action.get("action_id")]))
        if any(key in self._seen for key in keys):
            raise RefusedInteractionError("this click was already handled (a replayed request)")
        for key in keys:
            self._seen[key] = now + 2 * WINDOW_SECONDS

    async def _decide(self, payload: dict[str, Any]) -> str:
        if payload.get("type") != "block_actions":
            raise RefusedInteractionError("only the message's buttons are handled here")
        action = _action(payload)
        action_id = str(action.get("action_id"))
        if action_id not in (APPROVE, REJECT, SEND, DECLINE):
            raise RefusedInteractionError("not an Approve, Reject, Send or Decline button")
        try:
            shown = json.loads(action.get("value") or "")
            workflow_id, run_id, call_id, sha = (str(shown[k]) for k in ("workflow_id", "run_id", "call_id", "sha256"))
        except (ValueError, KeyError, TypeError):
            raise RefusedInteractionError("the button does not name a call") from None
        kind = "input" if action_id in (SEND, DECLINE) else "approval"
        person = self._person(_user(payload))
        details = await self.runs.details(workflow_id, call_id)
        pending = details.pending if details is not None else None
        if (
            pending is None
            or pending.kind != kind
            or (run_id and pending.run_id and pending.run_id != run_id)
            or (kind == "input" and pending.question is None)
        ):
            await self._refresh(workflow_id, run_id, call_id, kind)
            if kind == "input":
                raise RefusedInteractionError("the server no longer asks this (answered, or the call went on)")
            raise RefusedInteractionError("the call no longer waits (decided, timed out, or its run ended)")
        if kind == "input":
            return await self._answer(payload, person, workflow_id, run_id, call_id, sha, action_id, pending)
        if pending.arguments_sha256 != sha:
            raise RefusedInteractionError(
                "the call's arguments changed since this message was posted: read them again (the message follows)"
            )
        decision: Literal["approve", "reject"] = "approve" if action_id == APPROVE else "reject"
        reason = _reason(payload) if decision == "reject" else ""
        try:
            record = await self.runs.decide(
                person, workflow_id, call_id, seen_sha256=sha, decision=decision, reason=reason
            )
        except DecisionNotRecordedError as err:
            raise RefusedInteractionError(str(err)) from None
        log.info("slack decision recorded", workflow_id=workflow_id, call_id=call_id, decision=decision, person=person)
        await self._refresh(workflow_id, run_id, call_id, kind)
        verb = "approved" if decision == "approve" else "rejected"
        return f"You {verb} {record.server}.{record.tool} (call {call_id}) as {person}."

    async def _answer(
        self,
        payload: dict[str, Any],
        person: str,
        workflow_id: str,
        run_id: str,
        call_id: str,
        sha: str,
        action_id: str,
        pending: PendingApprovalView,
    ) -> str:
        """Send the message's form as the answer to the server's question (the run checks it again)."""
        if pending.question is None or pending.question.question_sha256 != sha:
            raise RefusedInteractionError("the server asked something else since this message was posted")
        content: dict[str, Any] | None = None
        action: Literal["accept", "decline"] = "accept" if action_id == SEND else "decline"
        if action == "accept":
            try:
                content = content_of(fields_of(pending.question.requested_schema or {}), _form_values(payload))
            except FormError as err:
                raise RefusedInteractionError(str(err)) from None
        try:
            await self.runs.answer(person, workflow_id, call_id, seen_sha256=sha, action=action, content=content)
        except DecisionNotRecordedError as err:
            raise RefusedInteractionError(str(err)) from None
        log.info("slack answer recorded", workflow_id=workflow_id, call_id=call_id, action=action, person=person)
        await self._refresh(workflow_id, run_id, call_id, "input")
        verb = "answered" if action == "accept" else "declined"
        return f"You {verb} {pending.server}.{pending.tool}'s question (call {call_id}) as {person}."

    def _person(self, user: str) -> str:
        """The person of `approvers.toml` whose `slack` id is `user`."""
        try:
            people = slack_users(self.config.approvers_file)
        except ConfigError as err:
            log.warning("slack approvers file unreadable", why=str(err))
            raise RefusedInteractionError("the approvers file cannot be read; ask the operator") from None
        person = people.get(user)
        if person is None:
            raise RefusedInteractionError(
                f'your Slack account ({user}) is not linked to an approver: add `slack = "{user}"` to your '
                "entry in approvers.toml"
            )
        return person

    async def _refresh(self, workflow_id: str, run_id: str, call_id: str, kind: str) -> None:
        """Close the clicked call's message now if it is done; anything else waits for the next pass."""
        try:
            await self.bridge.settle(workflow_id, run_id, call_id, kind)
        except (RPCError, SlackClientError, OSError) as err:  # the decision stands whatever Slack says
            log.warning("slack refresh failed", error=type(err).__name__)


def _payload(body: bytes) -> dict[str, Any]:
    """The interaction payload: the form field `payload`, a JSON object."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError):
        raise ValueError("not a Slack interaction payload") from None
    if not isinstance(payload, dict):
        raise ValueError("not a Slack interaction payload")
    return payload


def _action(payload: dict[str, Any]) -> dict[str, Any]:
    """The clicked element (Slack sends one action per click); empty when the payload has none."""
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return actions[0]
    return {}


def _user(payload: dict[str, Any]) -> str:
    user = payload.get("user")
    return str(user.get("id")) if isinstance(user, dict) else ""


def _form_values(payload: dict[str, Any]) -> dict[str, list[str]]:
    """The form's values as the inbox's form submits them: `field.<name>` -> the strings given."""
    values: dict[str, list[str]] = {}
    for block_id, actions in _state_values(payload).items():
        state = actions.get(FIELD_VALUE) if isinstance(actions, dict) else None
        if not str(block_id).startswith(FIELD_PREFIX) or not isinstance(state, dict):
            continue
        if isinstance(state.get("selected_options"), list):
            values[block_id] = [str(o.get("value")) for o in state["selected_options"] if isinstance(o, dict)]
        elif isinstance(state.get("selected_option"), dict):
            values[block_id] = [str(state["selected_option"].get("value"))]
        elif state.get("value") is not None:
            values[block_id] = [str(state["value"])]
    return values


def _reason(payload: dict[str, Any]) -> str:
    """The Reason field of the message the button sits in, as Slack sends its state."""
    actions = _state_values(payload).get(REASON)
    state = actions.get(REASON) if isinstance(actions, dict) else None
    value = state.get("value") if isinstance(state, dict) else None
    return str(value)[:1000] if value else ""


def _state_values(payload: dict[str, Any]) -> dict[str, Any]:
    """The message's inputs as the click sent them: block id -> action id -> state."""
    state = payload.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}


async def _answer(response_url: str, text: str) -> None:
    """Tell the person, in Slack, only them: an ephemeral reply that leaves the message as it is."""
    try:
        async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_SECONDS) as http:
            await http.post(response_url, json={"response_type": "ephemeral", "replace_original": False, "text": text})
    except httpx.HTTPError as err:
        log.warning("slack answer failed", error=type(err).__name__)
