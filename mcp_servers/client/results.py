"""An MCP tool result as the model should see it: every content kind, structured output, annotations.

Text is passed as is; structured content is added as JSON (nested at most `MAX_DEPTH` levels
deep; deeper parts become a marker) unless a text block already carries exactly it; structured
content that misses the tool's `outputSchema` is still the server's answer, shown with a warning
(`Mismatched`): the call did reach the server, and a write may have been applied; resource links keep
their URI, name and type; embedded text resources keep their URI and text; binary parts (images,
audio, blobs) become a placeholder naming the MIME type and size. For a model that takes images,
images of a type models accept are also returned (attached) while they fit the byte budget the
caller gives; the placeholder then says so, and the rest stay placeholders.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonschema import SchemaError
from mcp_types import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

MAX_IMAGE_BYTES = 1_000_000
# Structured content is shown this many levels deep; a hostile server's deeper nesting would
# otherwise recurse past Python's limit and fail the call after the server had acted on it.
MAX_DEPTH = 64
# What of the SDK's output-schema complaint is kept (it quotes the offending value).
MAX_PROBLEM_CHARS = 300
# What OpenAI-compatible vision models accept as an `input_image` data URL.
MODEL_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class OutputChecker:
    """How results are checked against a tool's `outputSchema` in place of the SDK's jsonschema.

    The worker side passes a bounded one (activities/output_schema.py): the SDK's validator runs
    Python's backtracking `re`, so a hostile pattern would hold the worker. `validator(schema)`
    builds a checker (raising `jsonschema.SchemaError` for a non-schema); a check runs inside
    `bounded()`; `unchecked` is what a check that could not be made safely raises.
    """

    validator: Callable[[dict[str, Any]], Any]
    bounded: Callable[[], contextlib.AbstractContextManager[None]]
    unchecked: type[Exception]


@dataclass
class Image:
    """One image part of a result, base64 as the server sent it."""

    mime_type: str
    data: str
    size: int


@dataclass
class Rendered:
    """A result rendered for the model: the text, and the images it may also be shown."""

    text: str
    images: list[Image] = field(default_factory=list)
    # Base64 characters of the attached images (what they add to a reply's size).
    attached_bytes: int = 0


class Mismatched(CallToolResult):
    """A result whose structured content does not match the tool's `outputSchema`, as the server sent it."""

    output_problem: str


class Unchecked(CallToolResult):
    """A result whose structured content was not checked: its `outputSchema` cannot be checked in bounded work."""

    output_unchecked: str


@dataclass
class _OutputCheck:
    problem: str | None = None
    unchecked: str | None = None


_checking: contextvars.ContextVar[_OutputCheck | None] = contextvars.ContextVar("airlock_output_check", default=None)
_Validate = Callable[[str, CallToolResult], Awaitable[None]]


def _is_output_problem(err: BaseException) -> bool:
    """The SDK refused a result for its output schema: the server answered, not as it promised."""
    text = str(err)
    return isinstance(err, RuntimeError) and (
        text.startswith(("Invalid structured content", "Invalid schema for tool"))
        or "did not return structured content" in text
    )


def _lenient(session: Any, checker: OutputChecker | None) -> None:
    """Make `session` note an output-schema mismatch for the call being checked instead of raising.

    The SDK validates a result after the server answered and raises without it: a write the
    server applied would be reported as failed. Installed once per session; a call outside
    `output_checked` still gets the SDK's error. With a `checker`, the SDK's validator is replaced
    by it: a schema it cannot check in bounded work leaves the result marked "not checked" instead
    of freezing the worker on a backtracking pattern.
    """
    if getattr(session, "_airlock_lenient", False):
        return
    strict: _Validate = session.validate_tool_result
    built: dict[str, tuple[dict[str, Any], Any]] = {}

    def bounded_validator(name: str, schema: dict[str, Any]) -> Any:
        assert checker is not None
        cached = built.get(name)
        if cached is not None and cached[0] == schema:
            return cached[1]
        try:
            made = checker.validator(schema)
        except SchemaError as err:
            raise RuntimeError(f"Invalid schema for tool {name}: {str(err).split(chr(10), 1)[0]}") from None
        built[name] = (schema, made)
        return made

    async def validate(name: str, result: CallToolResult) -> None:
        check = _checking.get()
        unchecked = checker.unchecked if checker is not None else _NeverRaised
        try:
            with checker.bounded() if checker is not None else contextlib.nullcontext():
                await strict(name, result)
        except (unchecked, RecursionError) as err:
            # The server answered; only the check could not be made safely.
            if check is not None:
                why = str(err) if isinstance(err, unchecked) else "it is nested too deeply"
                check.unchecked = why[:MAX_PROBLEM_CHARS]
        except RuntimeError as err:
            if check is None or not _is_output_problem(err):
                raise
            check.problem = str(err).split("\n", 1)[0][:MAX_PROBLEM_CHARS]

    if checker is not None:
        session._output_schema_validator = bounded_validator
    session.validate_tool_result = validate
    session._airlock_lenient = True


class _NeverRaised(Exception):
    """Stands in for `OutputChecker.unchecked` when the SDK's own validator is used."""


@contextlib.contextmanager
def output_checked(
    session: Any, checker: OutputChecker | None = None
) -> Iterator[Callable[[CallToolResult], CallToolResult]]:
    """While the block calls a tool on `session`, a schema mismatch is kept; yields what marks the result."""
    _lenient(session, checker)
    check = _OutputCheck()
    token = _checking.set(check)

    def marked(result: CallToolResult) -> CallToolResult:
        if check.problem is not None:
            return Mismatched(**dict(result), output_problem=check.problem)
        if check.unchecked is not None:
            return Unchecked(**dict(result), output_unchecked=check.unchecked)
        return result

    try:
        yield marked
    finally:
        _checking.reset(token)


def _decoded_size(data: str) -> int | None:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return None


def _size(data: str) -> int:
    decoded = _decoded_size(data)
    return len(data) if decoded is None else decoded


def _annotations(annotations: Annotations | None) -> str:
    if annotations is None:
        return ""
    parts = []
    if annotations.audience:
        parts.append("audience: " + ", ".join(annotations.audience))
    if annotations.priority is not None:
        parts.append(f"priority: {annotations.priority}")
    if annotations.last_modified:
        parts.append(f"last modified: {annotations.last_modified}")
    return f" ({'; '.join(parts)})" if parts else ""


def _binary(kind: str, mime_type: str | None, data: str, extra: str = "", shown: str = "not shown") -> str:
    return f"[{kind}{extra}: {mime_type or 'unknown type'}, {_size(data)} bytes, {shown}]"


def _structured_already_in(texts: list[str], structured: Any) -> bool:
    for text in texts:
        if structured == {"result": text}:
            return True
        try:
            value = json.loads(text)
            # SDK servers wrap a non-object return as {"result": value} beside its text.
            if value == structured or structured == {"result": value}:
                return True
        except (ValueError, RecursionError):
            # Not JSON, or nested too deep to compare: the structured content is shown on its own.
            continue
    return False


def _bounded(value: Any, depth: int = 0) -> Any:
    """`value` with everything nested deeper than `MAX_DEPTH` levels replaced by a marker."""
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return f"[airlock: nested deeper than {MAX_DEPTH} levels, not shown]"
    if isinstance(value, dict):
        return {str(key): _bounded(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_bounded(item, depth + 1) for item in value]
    return value


def render(result: CallToolResult, *, attach: int = 0) -> Rendered:
    """The model-facing text of `result`, and the images that fit in `attach` base64 bytes.

    An image is attached only if its type is one models take, its data is valid base64, it is at
    most `MAX_IMAGE_BYTES` decoded and it fits what is left of the budget; `attach=0` attaches none.
    """
    parts: list[str] = []
    texts: list[str] = []
    images: list[Image] = []
    left = attach
    for block in result.content:
        if isinstance(block, TextContent):
            note = _annotations(block.annotations)
            parts.append(f"[text{note}]\n{block.text}" if note else block.text)
            texts.append(block.text)
        elif isinstance(block, ImageContent):
            size = _decoded_size(block.data)
            fits = (
                size is not None
                and size <= MAX_IMAGE_BYTES
                and block.mime_type in MODEL_IMAGE_TYPES
                and len(block.data) <= left
            )
            if fits and size is not None:
                left -= len(block.data)
                images.append(Image(mime_type=block.mime_type, data=block.data, size=size))
            parts.append(
                _binary(
                    "image",
                    block.mime_type,
                    block.data,
                    _annotations(block.annotations),
                    "attached" if fits else "not shown",
                )
            )
        elif isinstance(block, AudioContent):
            parts.append(_binary("audio", block.mime_type, block.data, _annotations(block.annotations)))
        elif isinstance(block, ResourceLink):
            described = [f"uri: {block.uri}", f"name: {block.name}"]
            if block.title:
                described.append(f"title: {block.title}")
            if block.mime_type:
                described.append(f"type: {block.mime_type}")
            if block.size is not None:
                described.append(f"size: {block.size} bytes")
            if block.description:
                described.append(f"description: {block.description}")
            parts.append(f"[resource link{_annotations(block.annotations)}] " + "; ".join(described))
        elif isinstance(block, EmbeddedResource):
            resource = block.resource
            note = _annotations(block.annotations)
            if isinstance(resource, TextResourceContents):
                kind = f"; type: {resource.mime_type}" if resource.mime_type else ""
                parts.append(f"[resource{note}] uri: {resource.uri}{kind}\n{resource.text}")
            elif isinstance(resource, BlobResourceContents):
                parts.append(
                    f"[resource{note}] uri: {resource.uri} " + _binary("binary", resource.mime_type, resource.blob)
                )
        else:
            parts.append(f"[{getattr(block, 'type', 'unknown')} content not shown]")
    structured = result.structured_content
    if structured is not None and not _structured_already_in(texts, structured):
        shown = _bounded(structured)
        parts.append("[structured content]\n" + json.dumps(shown, ensure_ascii=False, sort_keys=True, default=str))
    if isinstance(result, Mismatched):
        parts.append(
            "[airlock: warning: the server answered, but its structured content does not match the tool's "
            f"output schema ({result.output_problem}); the call did reach the server]"
        )
    if isinstance(result, Unchecked):
        parts.append(
            "[airlock: note: the structured content was not checked against the tool's output schema "
            f"({result.output_unchecked})]"
        )
    return Rendered(text="\n".join(parts), images=images, attached_bytes=attach - left)


def result_text(result: CallToolResult) -> str:
    """The model-facing text of an MCP tool result."""
    return render(result).text
