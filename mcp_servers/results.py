"""An MCP tool result as the model should see it: every content kind, structured output, annotations.

Text is passed as is; structured content (already validated against the tool's `outputSchema` by
the SDK) is added as JSON unless a text block already carries exactly it; resource links keep
their URI, name and type; embedded text resources keep their URI and text; binary parts (images,
audio, blobs) become a placeholder naming the MIME type and size. For a model that takes images,
images of a type models accept are also returned (attached) while they fit the byte budget the
caller gives; the placeholder then says so, and the rest stay placeholders.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

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
# What OpenAI-compatible vision models accept as an `input_image` data URL.
MODEL_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


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
        except ValueError:
            continue
        # SDK servers wrap a non-object return as {"result": value} beside its text.
        if value == structured or structured == {"result": value}:
            return True
    return False


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
        parts.append("[structured content]\n" + json.dumps(structured, ensure_ascii=False, sort_keys=True))
    return Rendered(text="\n".join(parts), images=images, attached_bytes=attach - left)


def result_text(result: CallToolResult) -> str:
    """The model-facing text of an MCP tool result."""
    return render(result).text
