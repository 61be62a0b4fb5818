"""Tool arguments: their canonical hash, and the checks they pass before any approval or call.

Pure: used inside the workflow (the gate, the tool closures) and by the CLI that signs hashes.
Only real JSON is accepted (no NaN, Infinity or lone surrogates), and a tool's input schema is
treated as data, not a program: validating fetches nothing, matches patterns in linear time
(RE2) and stops after a bounded amount of work.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import UnknownType
from referencing.exceptions import Unresolvable

from workflows.errors import InvalidInputError
from workflows.schemas import NO_RETRIEVAL, UncheckableSchemaError, Validator, bounded
from workflows.schemas import problem as schema_problem

# A model or an approver could send arguments of any size or depth; these bound what is
# hashed, validated, shown to approvers and kept in history.
MAX_ARGUMENTS_BYTES = 64_000
MAX_DEPTH = 32
# Raw model output is parsed before it is judged; past this it is not even parsed.
MAX_RAW_ARGUMENTS = 4_000_000
# No JSON text of MAX_ARGUMENTS_BYTES holds more values than this (each takes 2 bytes or more),
# so a value with more is refused for its size at once: walking and validating a million values
# inside a workflow task would outlast its deadlock timeout.
_MAX_VALUES = MAX_ARGUMENTS_BYTES // 2 + 1
# Subschemas entered and patterns matched while checking one set of arguments. Validation runs inside workflow tasks,
# so a schema built to explode (nested `anyOf` over `$ref`s) must end in an error, not a task
# that outlives Temporal's deadlock timeout on every replay; real tool schemas need far fewer.
MAX_SCHEMA_STEPS = 10_000
# How a refusal for the schema itself starts, where the call could never be valid: the model
# and the operator read that the tool, not the arguments, is at fault.
UNUSABLE_SCHEMA = "the tool's input schema cannot be used"

# What the model activity puts in place of arguments that decode to something no payload can carry
# (workflows/model_output.py), followed by the reason and ")": not JSON itself, so nothing parses it.
NOT_JSON_NOTE = "(Airlock: not valid JSON: "

# Any surrogate code point left in a decoded Python string is a lone one (pairs become one
# character): it cannot be encoded as UTF-8, so no payload, hash or server could carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


# --- real JSON --------------------------------------------------------------------------------


def not_json(value: Any) -> str | None:
    """Why a decoded value is not real JSON (a non-finite number, a lone surrogate), or None.

    Python's `json` (and pydantic's parser) accept `NaN`, `Infinity` and `1e309` and decode
    `"\\ud800"` into a string no encoder takes; checked before anything is hashed or recorded.
    """
    todo: list[tuple[Any, _Path]] = [(value, None)]
    while todo:
        node, path = todo.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                return f"{_where(path)}: a string with {_lone_surrogate(node)} is not text"
        elif isinstance(node, float):
            if math.isnan(node):
                return f"{_where(path)}: NaN is not a JSON number"
            if math.isinf(node):
                sign = "-" if node < 0 else ""
                return f"{_where(path)}: {sign}Infinity is not a JSON number (nor is a number as large as 1e309)"
        elif isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    return f"{_where(path)}: a key that is not a string"
                if not key.isascii() and _SURROGATE.search(key):
                    return f"{_where(path)}: a key with {_lone_surrogate(key)} is not text"
                todo.append((child, (key, path)))
        elif isinstance(node, list):
            todo.extend((child, (index, path)) for index, child in enumerate(node))
        elif not (node is None or isinstance(node, bool | int)):
            return f"{_where(path)}: a {type(node).__name__} is not a JSON value"
    return None


# A path into a value, innermost step first, shared by siblings: (key or index, parent path).
_Path = tuple[str | int, "_Path"] | None


def _where(path: _Path) -> str:
    steps: list[str] = []
    while path is not None:
        step, path = path
        steps.append(_shown(str(step), 40))
    return "/".join(reversed(steps)) or "(top level)"


def _shown(text: str, limit: int = 80) -> str:
    # Hostile text quoted back must itself be encodable: lone surrogates become escapes.
    text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= limit else f"{text[:limit]}…"


def _lone_surrogate(text: str) -> str:
    found = _SURROGATE.search(text)
    return f"a lone surrogate (\\u{ord(found.group()) if found else 0:04x})"


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of `value` (sorted keys, no spaces, UTF-8), or `InvalidInputError`."""
    problem = not_json(value)
    if problem is None:
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode()
        except (ValueError, TypeError, RecursionError) as err:
            problem = type(err).__name__
    raise InvalidInputError(f"not valid JSON: {problem}")


def arguments_sha256(arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of `arguments`; `InvalidInputError` for what is not JSON."""
    return hashlib.sha256(canonical_json(arguments)).hexdigest()


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


# --- schemas as data --------------------------------------------------------------------------


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
    """Every way `arguments` breaks the tool's JSON Schema (or Airlock's bounds), as short lines.

    A schema that cannot be checked safely (a remote `$ref`, a pattern RE2 cannot run, too much
    work) is one line starting "the tool's input schema cannot be used": the call is refused.
    """
    if (shape := _shape_problem(arguments)) is not None:
        return [shape]
    if (problem := not_json(arguments)) is not None:
        return [f"not valid JSON: {problem}"]
    try:
        errors = _validation_errors(schema, arguments)
    except UncheckableSchemaError as err:
        if (size := _size(arguments)) > MAX_ARGUMENTS_BYTES:
            return [f"(top level): {size} bytes, more than the {MAX_ARGUMENTS_BYTES} accepted"]
        return [f"{UNUSABLE_SCHEMA}: {err}"]
    except Unresolvable as err:
        where = _shown(repr(err.ref))
        return [f"{UNUSABLE_SCHEMA}: it refers to {where}, which is not in the schema, and Airlock fetches nothing"]
    except (
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
        ArithmeticError,
        RecursionError,
        UnknownType,
    ) as err:
        # A malformed schema (a list where a schema goes, a `$ref` loop) breaks the validator
        # itself; raised in a workflow task, that would fail it on every replay.
        return [f"{UNUSABLE_SCHEMA}: it is not a valid JSON Schema ({type(err).__name__})"]
    lines = []
    for error in errors[:5]:
        where = "/".join(_shown(str(p), 40) for p in error.absolute_path) or "(top level)"
        lines.append(f"{where}: {_short_message(error.message, error.instance)}")
    if lines:
        return lines
    # Checked last, so a schema's own limit (a field's maxLength) is what the model is told.
    if (size := _size(arguments)) > MAX_ARGUMENTS_BYTES:
        return [f"(top level): {size} bytes, more than the {MAX_ARGUMENTS_BYTES} accepted"]
    return []


def _shape_problem(value: Any) -> str | None:
    """Why `value` is too deep or has too many values to check at all, or None; bounded work."""
    count, todo = 0, [(value, 1)]
    while todo:
        node, level = todo.pop()
        count += 1
        if count > _MAX_VALUES:
            try:
                return f"(top level): {_size(value)} bytes, more than the {MAX_ARGUMENTS_BYTES} accepted"
            except RecursionError:
                break
        if isinstance(node, dict | list):
            if level > MAX_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            todo.extend((child, level + 1) for child in children)
    else:
        return None
    return f"(top level): nested deeper than {MAX_DEPTH} levels"


def _size(arguments: Any) -> int:
    # Measured as releases before this one did (default separators), so replays judge alike;
    # a lone surrogate is counted, not refused: `not_json` names it.
    return len(json.dumps(arguments, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _validation_errors(schema: dict[str, Any], arguments: Any) -> list[ValidationError]:
    if (problem := schema_problem(schema)) is not None:
        raise UncheckableSchemaError(problem)
    with bounded(MAX_SCHEMA_STEPS):
        validator = Validator(closed(schema), registry=NO_RETRIEVAL)
        return sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))


def _short_message(message: str, instance: Any) -> str:
    # jsonschema quotes the offending value whole; a huge one would push out the reason itself
    # ("is too long") and flood the model's context, so only its start is quoted.
    shown = repr(instance)
    if len(shown) > 80:
        message = message.replace(shown, f"{shown[:60]}... ({len(shown)} characters)")
    return message.encode("utf-8", "backslashreplace").decode()[:200]


def unreal(raw: str) -> str | None:
    """Why argument text that parses as JSON is still not real JSON (NaN, a lone surrogate), or None.

    None too for text that does not parse at all, or is too long to: `parse_arguments` says why.
    """
    if len(raw) > MAX_RAW_ARGUMENTS:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return not_json(value) if depth(value) <= MAX_DEPTH else None


def parse_arguments(raw: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Decode and validate tool arguments; returns (arguments, None) or (None, error for the model)."""
    if len(raw) > MAX_RAW_ARGUMENTS:
        return None, f"the arguments are {len(raw)} characters, more than the {MAX_RAW_ARGUMENTS} accepted"
    if raw.startswith(NOT_JSON_NOTE) and raw.endswith(")"):
        return None, f"the arguments are not valid JSON: {_shown(raw[len(NOT_JSON_NOTE) : -1], 300)}"
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        return None, f"the arguments are not valid JSON ({err.msg} at position {err.pos})"
    except RecursionError:
        return None, f"the arguments are nested deeper than {MAX_DEPTH} levels"
    except ValueError as err:
        # Python refuses integers of more than 4,300 digits (int_max_str_digits) with a plain ValueError.
        return None, f"the arguments are not valid JSON: {_shown(str(err).partition(':')[0], 120)}"
    if not isinstance(arguments, dict):
        return None, "the arguments must be a JSON object"
    if (shape := _shape_problem(arguments)) is not None:
        return None, f"the arguments do not match the tool's input schema: {shape}"
    if (problem := not_json(arguments)) is not None:
        return None, f"the arguments are not valid JSON: {problem}"
    problems = schema_errors(schema, arguments)
    if problems and problems[0].startswith(UNUSABLE_SCHEMA):
        return None, problems[0]
    if problems:
        return None, "the arguments do not match the tool's input schema: " + "; ".join(problems)
    return arguments, None
