"""An input request's requested schema as HTML form fields, and the submitted form back as content.

The schema is the spec's flat object of primitives (the worker refuses anything else before a
person sees it): text, number, a checkbox, a choice, or a multi-select of choices. The content
built here is checked again by the run against the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from console.errors import ConsoleError


class FormError(ConsoleError):
    """A submitted value that does not fit its field; the message names the field."""


@dataclass(frozen=True)
class Field:
    """One form field: its name, how it is entered, and what it says."""

    name: str
    kind: str  # "text" | "number" | "integer" | "checkbox" | "select" | "multiselect"
    title: str
    description: str = ""
    required: bool = False
    default: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)
    input_type: str = "text"


def fields_of(schema: Mapping[str, Any]) -> list[Field]:
    """The fields of a requested schema, in its order."""
    required = set(schema.get("required") or [])
    found = []
    for name, spec in (schema.get("properties") or {}).items():
        kind, choices = _kind(spec)
        fmt = spec.get("format")
        input_type = {"email": "email", "uri": "url", "date": "date", "date-time": "datetime-local"}.get(fmt, "text")
        found.append(
            Field(
                name=name,
                kind=kind,
                title=str(spec.get("title") or name),
                description=str(spec.get("description") or ""),
                required=name in required,
                default=spec.get("default"),
                choices=choices,
                input_type=input_type,
            )
        )
    return found


def _kind(spec: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items") or {}
        return "multiselect", _choices(items.get("enum"), None, items.get("anyOf"))
    if kind == "string" and ("enum" in spec or "oneOf" in spec):
        return "select", _choices(spec.get("enum"), spec.get("enumNames"), spec.get("oneOf"))
    if kind == "boolean":
        return "checkbox", []
    if kind in ("number", "integer"):
        return str(kind), []
    return "text", []


def _choices(enum: Any, names: Any, options: Any) -> list[tuple[str, str]]:
    if isinstance(options, list):
        return [(str(o.get("const")), str(o.get("title") or o.get("const"))) for o in options if isinstance(o, dict)]
    values = [str(v) for v in enum or []]
    labels = [str(n) for n in names] if isinstance(names, list) and len(names) == len(values) else values
    return list(zip(values, labels, strict=True))


def content_of(fields: Sequence[Field], values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The answer's content from the submitted form (`values`: each field's submitted strings)."""
    content: dict[str, Any] = {}
    for item in fields:
        given = [v for v in values.get(f"field.{item.name}", []) if v != ""]
        if item.kind == "checkbox":
            content[item.name] = bool(given)
            continue
        if item.kind == "multiselect":
            if given or item.required:
                content[item.name] = given
            continue
        if not given:
            if item.required:
                raise FormError(f"{item.title}: required")
            continue
        text = given[0]
        if item.kind in ("number", "integer"):
            try:
                content[item.name] = int(text) if item.kind == "integer" else float(text)
            except ValueError:
                what = "an integer" if item.kind == "integer" else "a number"
                raise FormError(f"{item.title}: {text[:40]!r} is not {what}") from None
        else:
            content[item.name] = text
    return content
