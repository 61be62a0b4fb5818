"""Tool arguments: their canonical hash, and the checks they pass before any approval or call.

Pure: used inside the workflow (the gate, the tool closures) and by the CLI that signs hashes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jsonschema import Draft202012Validator

# A model or an approver could send arguments of any size or depth; these bound what is
# hashed, validated, shown to approvers and kept in history.
MAX_ARGUMENTS_BYTES = 64_000
MAX_DEPTH = 32
# Raw model output is parsed before it is judged; past this it is not even parsed.
MAX_RAW_ARGUMENTS = 1_000_000


def arguments_sha256(arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of `arguments` (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests lists and objects, counting no further than `limit` + 1."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level > limit:
                return level
            children = node.values() if isinstance(node, dict) else node
            todo.extend((child, level + 1) for child in children)
    return deepest


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with undeclared top-level properties refused unless it says otherwise.

    JSON Schema allows extra properties by default and MCP servers' generated schemas rarely say
    `additionalProperties`; the servers then drop unknown fields silently, so an approver would
    sign off on arguments that do not mean what they say. Declared openness is kept.
    """
    if "properties" in schema and not {"additionalProperties", "patternProperties"} & schema.keys():
        return {**schema, "additionalProperties": False}
    return schema


def schema_errors(schema: dict[str, Any], arguments: Any) -> list[str]:
    """Every way `arguments` breaks the tool's JSON Schema (or Airlock's bounds), as short lines."""
    if depth(arguments) > MAX_DEPTH:
        return [f"(top level): nested deeper than {MAX_DEPTH} levels"]
    validator = Draft202012Validator(closed(schema))
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors[:5]:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        lines.append(f"{where}: {_short_message(error.message, error.instance)}")
    if lines:
        return lines
    # Checked last, so a schema's own limit (a field's maxLength) is what the model is told.
    size = len(json.dumps(arguments, ensure_ascii=False).encode())
    if size > MAX_ARGUMENTS_BYTES:
        return [f"(top level): {size} bytes, more than the {MAX_ARGUMENTS_BYTES} accepted"]
    return []


def _short_message(message: str, instance: Any) -> str:
    # jsonschema quotes the offending value whole; a huge one would push out the reason itself
    # ("is too long") and flood the model's context, so only its start is quoted.
    shown = repr(instance)
    if len(shown) > 80:
        message = message.replace(shown, f"{shown[:60]}... ({len(shown)} characters)")
    return message[:200]


def parse_arguments(raw: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Decode and validate tool arguments; returns (arguments, None) or (None, error for the model)."""
    if len(raw) > MAX_RAW_ARGUMENTS:
        return None, f"the arguments are {len(raw)} characters, more than the {MAX_RAW_ARGUMENTS} accepted"
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        return None, f"the arguments are not valid JSON ({err.msg} at position {err.pos})"
    except RecursionError:
        return None, f"the arguments are nested deeper than {MAX_DEPTH} levels"
    if not isinstance(arguments, dict):
        return None, "the arguments must be a JSON object"
    problems = schema_errors(schema, arguments)
    if problems:
        return None, "the arguments do not match the tool's input schema: " + "; ".join(problems)
    return arguments, None
