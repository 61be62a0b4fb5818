"""Elicitation on the worker: a server's input request is answered from answers people already gave.

An activity never waits for a person: that would hold a worker slot and an MCP stream for
hours, and die with the worker. Instead a question nobody has answered yet is answered
`cancel` (so the server does not act on it), the call's `Round` keeps the question, and the
activity reports it; the workflow waits durably and sends the call again with the answers,
and when the server asks the same question again this callback answers it from them.

A request is matched to the call that caused it by a context variable the call sets: the SDK
dispatches a 2026-07-28 `InputRequiredResult`'s requests in the calling task, and over
streamable HTTP it reads each POST's stream (where a 2025-11-25 server's mid-call
`elicitation/create` arrives) in the calling task's context too. Over stdio a 2025-11-25
request carries nothing that names its call: it belongs to the one call in flight on that
session, and with several in flight it cannot be told apart and is answered `cancel`.
The MCP side knows nothing of Temporal: the activity maps these types.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestFormParams, ElicitRequestParams, ElicitRequestURLParams, ElicitResult, ErrorData
from pydantic import ValidationError

from mcp_servers.client.errors import QuestionRefusedError

log = structlog.get_logger(__name__)

Action = Literal["accept", "decline", "cancel"]
Value = str | int | float | bool | list[str] | None

# What a server may ask: enough for any real form, never a flood into history or a person's screen.
MAX_MESSAGE_CHARS = 2_000
MAX_SCHEMA_BYTES = 16_000
MAX_PROPERTIES = 30
MAX_CHOICES = 100
MAX_URL_CHARS = 2_000
MAX_ID_CHARS = 200
# URL elicitations read from one `URLElicitationRequiredError` (-32042); the rest are only counted.
MAX_REQUIRED = 10
PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# The spec's PrimitiveSchemaDefinition (2025-11-25): these keywords and nothing else.
_COMMON = {"type", "title", "description", "default"}
_ALLOWED = {
    "string": _COMMON | {"minLength", "maxLength", "format", "enum", "enumNames", "oneOf"},
    "number": _COMMON | {"minimum", "maximum"},
    "integer": _COMMON | {"minimum", "maximum"},
    "boolean": _COMMON,
    "array": _COMMON | {"items", "minItems", "maxItems"},
}
_TOP = {"type", "properties", "required", "title", "description", "$schema"}
# Field names and titles that ask for a secret, after camelCase and punctuation become spaces.
_SECRET_WORDS = re.compile(
    r"\b(api ?keys?|access ?keys?|private ?keys?|secret ?keys?|passwords?|passwd|passphrases?|pass ?codes?"
    r"|secrets?|token|credentials?|auth|authorization|otp|pin)\b"
)


@dataclass(frozen=True)
class Question:
    """One input request as Airlock shows it: a form (message + flat schema) or a URL to visit."""

    mode: Literal["form", "url"]
    message: str
    schema: dict[str, Any] | None = None
    url: str | None = None
    elicitation_id: str | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 of the question's canonical JSON, without a URL's elicitation id (servers mint one per ask)."""
        canonical = json.dumps(
            {"mode": self.mode, "message": self.message, "requestedSchema": self.schema, "url": self.url},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Given:
    """An answer a person gave to one question of this call."""

    question_sha256: str
    action: Action
    content: dict[str, Value] | None = None


def question_of(params: ElicitRequestParams) -> Question:
    """The request as a bounded, checked `Question`; `QuestionRefusedError` for anything the spec does not allow."""
    message = params.message
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        raise QuestionRefusedError(f"its message is longer than {MAX_MESSAGE_CHARS} characters")
    if isinstance(params, ElicitRequestFormParams):
        return Question(mode="form", message=message, schema=checked_schema(params.requested_schema))
    url = params.url
    if len(url) > MAX_URL_CHARS or not re.match(r"^https?://[^\s]+$", url):
        raise QuestionRefusedError("URL mode needs an http(s) URL of at most 2000 characters without spaces")
    # Shown, never matched on (servers mint one per ask): an id too long to show is dropped whole,
    # since a cut one could keep part of a secret the worker would no longer recognise to scrub.
    elicitation_id = params.elicitation_id
    if elicitation_id is not None and not 0 < len(elicitation_id) <= MAX_ID_CHARS:
        elicitation_id = None
    return Question(mode="url", message=message, url=url, elicitation_id=elicitation_id)


def checked_schema(schema: Any) -> dict[str, Any]:
    """`schema` when it is the spec's flat object of primitive properties, within Airlock's bounds."""
    if not isinstance(schema, dict):
        raise QuestionRefusedError("its requestedSchema is not an object")
    try:
        size = len(json.dumps(schema, ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        raise QuestionRefusedError("its requestedSchema is not plain JSON") from None
    if size > MAX_SCHEMA_BYTES:
        raise QuestionRefusedError(f"its requestedSchema is {size} bytes, more than the {MAX_SCHEMA_BYTES} accepted")
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise QuestionRefusedError('its requestedSchema must be {"type": "object", "properties": {...}}')
    extra = set(schema) - _TOP
    if extra:
        raise QuestionRefusedError(f"its requestedSchema has keywords the spec does not allow: {sorted(extra)[:5]}")
    properties: dict[str, Any] = schema["properties"]
    if not 0 < len(properties) <= MAX_PROPERTIES:
        raise QuestionRefusedError(f"its requestedSchema must have 1 to {MAX_PROPERTIES} properties")
    for name, spec in properties.items():
        if not PROPERTY_NAME.match(name):
            # Not quoted: a cut of the server's text could hold part of a secret, past scrubbing.
            raise QuestionRefusedError(f"a property name is not a plain name ({PROPERTY_NAME.pattern})")
        problem = _property_problem(spec)
        if problem:
            raise QuestionRefusedError(f"property {name!r}: {problem}")
        if asks_for_secret(name, spec):
            # The spec forbids it, and an answer would sit in history and on approvers' screens.
            raise QuestionRefusedError(
                f"property {name!r} asks for a secret (a password, key or token); "
                "a form must not ask for secrets (URL mode is for that)"
            )
    required = schema.get("required", [])
    if not isinstance(required, list) or any(r not in properties for r in required):
        raise QuestionRefusedError("its required list must name declared properties")
    return schema


def asks_for_secret(name: str, spec: dict[str, Any]) -> bool:
    """Whether a form field asks for a secret: `format: password`, or a name or title that says so."""
    if spec.get("format") == "password":
        return True
    for text in (name, spec.get("title")):
        if isinstance(text, str):
            # apiKey, api_key and "API key" read alike.
            words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text[:200]).lower()
            if _SECRET_WORDS.search(re.sub(r"[^a-z0-9]+", " ", words)):
                return True
    return False


def _property_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return "not a schema object"
    kind = spec.get("type")
    if kind not in _ALLOWED:
        # Quoted only when it is a JSON Schema type name: anything else is the server's text.
        shown = repr(kind) if kind in ("object", "null") else "of another kind"
        return f"type {shown} is not a primitive (string, number, integer, boolean, or an array of choices)"
    extra = set(spec) - _ALLOWED[kind]
    if extra:
        return f"keywords not allowed for {kind}: {sorted(extra)[:5]}"
    if "enum" in spec and not _strings(spec["enum"]):
        return f"enum must list 1 to {MAX_CHOICES} strings"
    if "oneOf" in spec and not _choices(spec["oneOf"]):
        return f"oneOf must list 1 to {MAX_CHOICES} {{const, title}} strings"
    if kind == "array":
        items = spec.get("items")
        if (
            not isinstance(items, dict)
            or set(items) - {"type", "enum", "anyOf"}
            or items.get("type", "string") != "string"
        ):
            return "an array is only a multi-select of string choices (items: enum or anyOf)"
        if not (_strings(items.get("enum")) or _choices(items.get("anyOf"))):
            return f"a multi-select lists 1 to {MAX_CHOICES} string choices"
    return None


def _strings(values: Any) -> bool:
    return isinstance(values, list) and 0 < len(values) <= MAX_CHOICES and all(isinstance(v, str) for v in values)


def _choices(values: Any) -> bool:
    return (
        isinstance(values, list)
        and 0 < len(values) <= MAX_CHOICES
        and all(
            isinstance(v, dict) and isinstance(v.get("const"), str) and set(v) <= {"const", "title"} for v in values
        )
    )


@dataclass
class Round:
    """One tool call's elicitation: the answers already given, and the first question nobody answered yet."""

    given: list[Given] = field(default_factory=list)
    asked: Question | None = None
    # Why the first question this call could not be shown to anyone (outside the spec's bounds).
    refused: str | None = None
    # Requests answered `cancel` because nobody had answered them (a flood is only counted).
    unanswered: int = 0
    _used: set[int] = field(default_factory=set)

    def respond(self, params: ElicitRequestParams) -> ElicitResult:
        """The answer given to this question, or `cancel` (the question is kept to ask a person)."""
        try:
            question = question_of(params)
        except QuestionRefusedError as err:
            self._refuse(str(err))
            return ElicitResult(action="cancel")
        for index, given in enumerate(self.given):
            if index not in self._used and given.question_sha256 == question.sha256:
                self._used.add(index)
                content = given.content if given.action == "accept" and question.mode == "form" else None
                return ElicitResult(action=given.action, content=content)
        if self.asked is None and self.refused is None:
            self.asked = question
        self.unanswered += 1
        return ElicitResult(action="cancel")

    def required(self, error: ErrorData) -> None:
        """Take the URL elicitations a server's -32042 error asks for, as if it had sent them as requests.

        The server refused the call until the person visits a URL: the first such question nobody
        answered yet is kept, to be asked, and the call is sent again once it is answered.
        """
        data = error.data if isinstance(error.data, dict) else {}
        listed = data.get("elicitations")
        if not isinstance(listed, list) or not listed:
            self._refuse("its URL-elicitation-required error lists no elicitations")
            return
        for item in listed[:MAX_REQUIRED]:
            try:
                params = ElicitRequestURLParams.model_validate(item)
            except ValidationError:
                self._refuse("its URL-elicitation-required error lists something that is not a URL elicitation")
                return
            self.respond(params)
        self.unanswered += max(0, len(listed) - MAX_REQUIRED)

    def _refuse(self, why: str) -> None:
        if self.asked is None and self.refused is None:
            self.refused = why
        self.unanswered += 1


_current: contextvars.ContextVar[tuple[object, Round] | None] = contextvars.ContextVar("airlock_round", default=None)
_in_flight: dict[int, list[Round]] = {}


@contextlib.contextmanager
def attributed(session: object, asking: Round | None) -> Iterator[None]:
    """While the block runs, input requests on `session` that belong to this call go to `asking`."""
    if asking is None:
        yield
        return
    token = _current.set((session, asking))
    rounds = _in_flight.setdefault(id(session), [])
    rounds.append(asking)
    try:
        yield
    finally:
        _current.reset(token)
        rounds.remove(asking)
        if not rounds:
            _in_flight.pop(id(session), None)


async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
    """The worker's elicitation callback: the call's given answer, or `cancel`."""
    current = _current.get()
    if current is not None and current[0] is context.session:
        return current[1].respond(params)
    active = _in_flight.get(id(context.session), [])
    if len(active) == 1:
        return active[0].respond(params)
    # Not attributable to one call: nobody could be asked, so the server must not act on it.
    log.warning("mcp_elicitation_unattributed", calls_in_flight=len(active))
    return ElicitResult(action="cancel")
