"""The Slack message of one gated call, in Block Kit: pending (with buttons) or ended (saying how).

Everything a model, a server or a requester chose (arguments, requester, ids, reasons) goes in
`plain_text` or a preformatted rich-text element, which Slack shows literally: no mention,
link or formatting can be smuggled in; and every hidden character is shown escaped
(`workflows.visible`), so a person reads the call they approve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from console.inbox.forms import Field as FormField
from console.inbox.forms import fields_of
from workflows.visible import visible, visible_json

APPROVE = "airlock_approve"
REJECT = "airlock_reject"
SEND = "airlock_send"
DECLINE = "airlock_decline"
# An input request's form: one input block per field, `field.<name>` (as the inbox's form names it).
FIELD_PREFIX = "field."
FIELD_VALUE = "value"
# A message holds at most 50 blocks; a form with more fields is answered in the inbox.
MAX_FORM_FIELDS = 40
MAX_OPTIONS = 100
REASON = "airlock_reason"
OPEN = "airlock_open"
# Block Kit's own limits: a plain-text field 2000 characters, a header 150, a button value 2000.
ARGUMENTS_SHOWN = 2_500
FIELD_CHARS = 1_900
HEADER_CHARS = 150
VALUE_CHARS = 2_000
EVENT_TYPE = "airlock_call"


@dataclass(frozen=True)
class Ending:
    """How a call stopped waiting, as its message says it: `approved`, `rejected`, `timed_out`, `ended`."""

    kind: str
    text: str


def call_key(call: dict[str, Any]) -> dict[str, str]:
    """What a message is about and what its buttons bind: the run, the call, the hash it shows.

    For an input request the hash is the question's: an answer is bound to what was asked.
    """
    question = call.get("question") or {}
    kind = "input" if call.get("kind") == "input" else "approval"
    return {
        "workflow_id": str(call["workflow_id"]),
        "run_id": str(call.get("run_id") or ""),
        "call_id": str(call["call_id"]),
        "kind": kind,
        "sha256": str(question.get("question_sha256") if kind == "input" else call["arguments_sha256"]),
    }


def metadata(call: dict[str, Any], *, open_: bool) -> dict[str, Any]:
    """The message's metadata: Slack keeps it with the message, so any tool can tell which call it shows."""
    return {"event_type": EVENT_TYPE, "event_payload": {**call_key(call), "open": open_}}


def render(call: dict[str, Any], *, inbox_url: str | None, ending: Ending | None = None) -> tuple[str, list[Any]]:
    """The notification text and the blocks of `call`'s message; buttons only while it waits."""
    if call.get("kind") == "input":
        return _render_input(call, inbox_url=inbox_url, ending=ending)
    tool = f"{call.get('server')}.{call.get('tool')}"
    agent = str(call.get("agent"))
    state = "Approval needed" if ending is None else _ENDED_TITLE.get(ending.kind, "Ended")
    title = _cut(visible(f"{state}: {agent} → {tool}"), HEADER_CHARS)
    needed = int(call.get("approvals_needed") or 1)
    approved = [str(name) for name in call.get("approved_by") or []]
    requester = call.get("requester")
    fields = [
        _plain(f"Agent: {agent}"),
        _plain(f"Tool: {tool}"),
        _plain(
            "Requester: " + (f"{requester} ({call.get('requester_proof') or 'claimed'})" if requester else "not given")
        ),
        _deadline(call.get("deadline")),
        _plain(
            f"Approvals still needed: {needed}" + (f" · approved so far: {', '.join(approved)}" if approved else "")
        ),
        _plain(f"May decide: {', '.join(call['deciders'])}" if call.get("deciders") else "May decide: any approver"),
        _plain(f"Arguments SHA-256: {call.get('arguments_sha256')}"),
    ]
    if ending is not None:
        # What was still needed and who may decide no longer hold: the ending says what happened.
        fields = [*fields[:4], fields[-1]]
    blocks: list[Any] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}},
        {"type": "section", "fields": fields},
        _preformatted(_arguments(call.get("arguments"))),
        {
            "type": "context",
            "elements": [_plain(f"run {call['workflow_id']} · call {call['call_id']}")],
        },
    ]
    if ending is not None:
        blocks.append({"type": "section", "text": _plain(ending.text)})
        return title, blocks
    value = json.dumps(call_key(call), separators=(",", ":"))
    buttons: list[dict[str, Any]] = []
    if len(value) <= VALUE_CHARS:
        blocks.append(
            {
                "type": "input",
                "block_id": REASON,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason (for Reject)"},
                "element": {"type": "plain_text_input", "action_id": REASON, "max_length": 1000},
            }
        )
        buttons += [
            _button("Approve", APPROVE, value, "primary"),
            _button("Reject", REJECT, value, "danger"),
        ]
    _add_buttons(blocks, buttons, call, inbox_url, "call")
    return title, blocks


def _render_input(call: dict[str, Any], *, inbox_url: str | None, ending: Ending | None) -> tuple[str, list[Any]]:
    """A server's question: its message, a form of its fields, Send and Decline (or only the inbox link)."""
    tool = f"{call.get('server')}.{call.get('tool')}"
    agent = str(call.get("agent"))
    question = call.get("question") or {}
    state = "Input requested" if ending is None else _ENDED_TITLE.get(ending.kind, "Ended")
    title = _cut(visible(f"{state}: {agent} → {tool}"), HEADER_CHARS)
    requester = call.get("requester")
    blocks: list[Any] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}},
        {
            "type": "section",
            "fields": [
                _plain(f"Agent: {agent}"),
                _plain(f"Tool: {tool}"),
                _plain(
                    "Requester: "
                    + (f"{requester} ({call.get('requester_proof') or 'claimed'})" if requester else "not given")
                ),
                _deadline(call.get("deadline")),
                _plain(
                    f"May answer: {', '.join(call['deciders'])}" if call.get("deciders") else "May answer: any approver"
                ),
                _plain(f"Question SHA-256: {question.get('question_sha256')}"),
            ],
        },
        {"type": "section", "text": _plain(f"The server asks: {question.get('message', '')}")},
        {"type": "context", "elements": [_plain(f"run {call['workflow_id']} · call {call['call_id']}")]},
    ]
    if ending is not None:
        blocks.append({"type": "section", "text": _plain(ending.text)})
        return title, blocks
    buttons: list[dict[str, Any]] = []
    fields = fields_of(question.get("requested_schema") or {}) if question.get("mode", "form") == "form" else None
    value = json.dumps(call_key(call), separators=(",", ":"))
    if fields is not None and len(fields) <= MAX_FORM_FIELDS and len(value) <= VALUE_CHARS:
        blocks += [_field_block(item) for item in fields]
        buttons += [_button("Send", SEND, value, "primary"), _button("Decline", DECLINE, value, "danger")]
    _add_buttons(blocks, buttons, call, inbox_url, "input")
    return title, blocks


def _field_block(item: FormField) -> dict[str, Any]:
    """One input block for one field of a server's form, as the inbox's form offers it."""
    element: dict[str, Any]
    choices = [{"text": _plain(label[:75]), "value": choice[:150]} for choice, label in item.choices[:MAX_OPTIONS]]
    if item.kind in ("number", "integer"):
        element = {"type": "number_input", "is_decimal_allowed": item.kind == "number"}
    elif item.kind == "checkbox":
        element = {"type": "checkboxes", "options": [{"text": _plain(item.title[:75]), "value": "true"}]}
    elif item.kind == "select" and choices:
        element = {"type": "static_select", "options": choices}
    elif item.kind == "multiselect" and choices:
        element = {"type": "multi_static_select", "options": choices}
    else:
        element = {"type": "plain_text_input", "max_length": 3000}
        if isinstance(item.default, str) and item.default:
            element["initial_value"] = item.default[:3000]
    element["action_id"] = FIELD_VALUE
    block: dict[str, Any] = {
        "type": "input",
        "block_id": FIELD_PREFIX + item.name,
        "optional": not item.required,
        "label": _plain(item.title[:2000]),
        "element": element,
    }
    if item.description:
        block["hint"] = _plain(item.description)
    return block


def _add_buttons(
    blocks: list[Any], buttons: list[dict[str, Any]], call: dict[str, Any], inbox_url: str | None, page: str
) -> None:
    if inbox_url:
        link = f"{inbox_url}/{page}?" + urlencode({"wf": call["workflow_id"], "call": call["call_id"]})
        buttons.append({"type": "button", "action_id": OPEN, "text": _plain("Open in the inbox"), "url": link})
    if buttons:
        blocks.append({"type": "actions", "block_id": "airlock_actions", "elements": buttons})


_ENDED_TITLE = {
    "approved": "Approved",
    "rejected": "Rejected",
    "timed_out": "Timed out",
    "answered": "Answered",
    "ended": "Ended",
}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(visible(text), FIELD_CHARS) or " ", "emoji": False}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _deadline(value: Any) -> dict[str, Any]:
    """The deadline in the reader's own time zone (Slack's date token), exact UTC as the fallback."""
    if not value:
        return _plain("Deadline: none")
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    stamp = int(at.timestamp())
    fallback = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"type": "mrkdwn", "text": f"Deadline: <!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"}


def _arguments(arguments: Any) -> str:
    """The arguments as indented JSON, hidden characters as JSON escapes, folded past a screenful."""
    text = visible_json(json.dumps(arguments, indent=2, ensure_ascii=False, sort_keys=True))
    if len(text) <= ARGUMENTS_SHOWN:
        return text
    rest = len(text) - ARGUMENTS_SHOWN
    return text[:ARGUMENTS_SHOWN] + f"\n… {rest} more characters: open the call in the inbox to read them all"


def _preformatted(text: str) -> dict[str, Any]:
    return {
        "type": "rich_text",
        "elements": [{"type": "rich_text_preformatted", "elements": [{"type": "text", "text": text}]}],
    }


def _button(label: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": _plain(label), "value": value, "style": style}
