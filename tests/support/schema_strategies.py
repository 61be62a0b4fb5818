"""Hypothesis strategies for tool arguments, built from real MCP tool input schemas.

Covers the JSON Schema keywords the bundled and third-party servers use (type, properties,
required, enum, pattern, min/maxLength, minimum/maximum, items, minItems, anyOf); a schema
using anything else fails loudly rather than producing arguments that only look valid.
"""

from __future__ import annotations

import re
import string
from typing import Any

from hypothesis import strategies as st

# Keywords that describe a value without constraining it.
_ANNOTATIONS = {"title", "description", "default", "$schema", "examples"}
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "items",
    "minItems",
    "anyOf",
    "additionalProperties",
}
# Values of every JSON type, to put where the schema expects another one.
JSON_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=20),
    "integer": st.integers(-1000, 1000),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    "boolean": st.booleans(),
    "null": st.none(),
    "array": st.lists(st.integers(), max_size=3),
    "object": st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=5), st.integers(), max_size=3),
}


def declared_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema admits; an integer is also a number."""
    if "anyOf" in schema:
        return set().union(*(declared_types(option) for option in schema["anyOf"]))
    kind = schema.get("type")
    kinds = {kind} if isinstance(kind, str) else set(kind or [])
    if "enum" in schema and not kinds:
        kinds = {type_name(value) for value in schema["enum"]}
    if "number" in kinds:
        kinds.add("integer")
    return kinds


def type_name(value: Any) -> str:
    """The JSON type of a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def valid_value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy `schema`."""
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise ValueError(f"schema keywords this strategy does not model: {sorted(unknown)}")
    if "anyOf" in schema:
        return st.one_of([valid_value(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        if "pattern" in schema:
            # JSON Schema patterns are ECMA-262, as RE2 (which checks them) reads them: \d, \w and \s
            # are ASCII, and `$` is the end of the text, not also the place before a final newline.
            pattern = re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", schema["pattern"]), re.ASCII)
            return st.from_regex(pattern).filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=min(high, 40))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            valid_value(schema.get("items", {"type": "string"})), min_size=schema.get("minItems", 0), max_size=3
        )
    if kind == "object":
        return valid_object(schema)
    raise ValueError(f"cannot generate values for schema {schema!r}")


def valid_object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with every required property and any subset of the optional ones."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: valid_value(sub) for name, sub in properties.items() if name in required},
        optional={name: valid_value(sub) for name, sub in properties.items() if name not in required},
    )


def wrong_type_value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a JSON type `schema` does not admit."""
    allowed = declared_types(schema)
    others = [strategy for kind, strategy in JSON_BY_TYPE.items() if kind not in allowed]
    return st.one_of(others)
