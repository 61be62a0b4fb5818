"""Tool arguments: their canonical hash, and the checks they pass before any approval or call.

Pure: used inside the workflow (the gate, the tool closures) and by the CLI that signs hashes.
Only real JSON is accepted (no NaN, Infinity or lone surrogates), and a tool's input schema is
treated as data, not a program: validating fetches nothing, matches patterns in linear time
(RE2) and stops after a bounded amount of work.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import re2
from attrs import fields
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import UnknownType
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from workflows.errors import InvalidInputError

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


class _UnusableSchemaError(Exception):
    """A tool's input schema that cannot be checked safely; the message says why."""


def _refuse_retrieval(uri: str) -> Any:
    # A schema's `$ref` to a URL (or a file) would make the worker fetch what a server chose,
    # from workflow code, again on every replay: only references inside the schema resolve.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field, not seen by mypy


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise _UnusableSchemaError(
            f"its pattern {_shown(repr(pattern))} is not supported by Airlock's linear-time matcher (RE2): {reason}"
        ) from None


def _search(pattern: Any, text: str) -> bool:
    if not isinstance(pattern, str):
        raise _UnusableSchemaError(f"a pattern is not a string: {_shown(repr(pattern))}")
    _step()
    return _regex(pattern).search(text) is not None


# Keyword functions with jsonschema's signature and messages, matching with RE2 where the
# originals use Python's backtracking `re` (which a pattern like `^(\w+\s?)*$` holds for hours).


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [key for key in instance if key not in properties and not any(_search(p, key) for p in patterns)]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # jsonschema compares unhashable items pairwise: 2,000 small objects took seconds, inside a
    # workflow task. Equal JSON values (1 and 1.0 alike, true and 1 not) have equal keys here.
    if unique and validator.is_type(instance, "array") and len({_same(item) for item in instance}) < len(instance):
        yield ValidationError(f"{instance!r} has non-unique elements")


def _same(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when JSON Schema calls two values equal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", value)  # 1 == 1.0 and hash(1) == hash(1.0)
    if isinstance(value, list):
        return ("array", tuple(_same(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, _same(item)) for key, item in value.items()))
    return ("other", id(value))


_Validator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "uniqueItems": _unique_items,
    },
)
# Steps taken in the check running in this context: [taken]; None outside `schema_errors`.
_STEPS: ContextVar[list[int] | None] = ContextVar("airlock_schema_steps", default=None)


def _step() -> None:
    # One subschema entered or one pattern matched: what a hostile schema multiplies.
    steps = _STEPS.get()
    if steps is not None:
        steps[0] += 1
        if steps[0] > MAX_SCHEMA_STEPS:
            raise _UnusableSchemaError(f"checking it takes more than {MAX_SCHEMA_STEPS} steps")


def _evolve(self: Any, **changes: Any) -> Any:
    # jsonschema's own `evolve` picks the validator class from a subschema's `$schema`, which
    # would bring back the drafts whose keywords use `re`: every subschema is checked as 2020-12,
    # as the tool schema itself is, and each one entered counts against the budget.
    _step()
    changes.setdefault("schema", self.schema)
    for attribute in fields(type(self)):
        if attribute.init and attribute.alias not in changes:
            changes[attribute.alias] = getattr(self, attribute.name)
    return _Validator(**changes)


_Validator.evolve = _evolve


def _schema_problem(schema: Any) -> str | None:
    """Why a schema cannot be used as it stands (a pattern RE2 refuses, a mix it cannot check), or None."""
    uses_pattern_properties = uses_unevaluated = False
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            if isinstance(pattern := node.get("pattern"), str):
                _regex(pattern)
            if isinstance(patterns := node.get("patternProperties"), dict):
                uses_pattern_properties = True
                for pattern in patterns:
                    _regex(pattern)
            uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
            todo.extend(node.values())
    if uses_pattern_properties and uses_unevaluated:
        # jsonschema matches patternProperties with `re` when it works out which properties
        # were evaluated; rather than run a server's pattern there, the pair is refused.
        return "it combines unevaluatedProperties with patternProperties, which Airlock does not check"
    return None


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
    except _UnusableSchemaError as err:
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
    if (problem := _schema_problem(schema)) is not None:
        raise _UnusableSchemaError(problem)
    token = _STEPS.set([0])
    try:
        validator = _Validator(closed(schema), registry=_NO_RETRIEVAL)
        return sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    finally:
        _STEPS.reset(token)


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
