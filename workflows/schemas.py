"""JSON Schemas as data, not programs: a validator that fetches nothing, matches in linear time and stops.

jsonschema's own keywords run `pattern` on Python's backtracking `re` (a server's
`"^(\\w+\\s?)*$"` against a long sentence holds the GIL for hours) and its default registry
retrieves remote `$ref`s. The validator here is jsonschema's Draft 2020-12 with those keywords
matched by RE2, no retrieval, every subschema checked as 2020-12, and a budget of steps. Used for
tools' input schemas inside the workflow (workflows/arguments.py) and for their output schemas on
the worker (mcp_servers/client/results.py). Pure: imports nothing of Airlock's.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import re2
from attrs import fields
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry
from referencing.exceptions import NoSuchResource

_SHOWN = 80


class UncheckableSchemaError(Exception):
    """A schema that cannot be checked safely (a pattern RE2 refuses, too much work); says why."""


def _refuse_retrieval(uri: str) -> Any:
    # A schema's `$ref` to a URL (or a file) would make the worker fetch what a server chose
    # (from workflow code, again on every replay): only references inside the schema resolve.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field, not seen by mypy


NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True

# Steps taken and allowed in the check running in this context: [taken, limit]; None outside `bounded`.
_STEPS: ContextVar[list[int] | None] = ContextVar("airlock_schema_steps", default=None)


def _shown(text: str) -> str:
    # Hostile text quoted back must itself be encodable: lone surrogates become escapes.
    text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…"


@contextlib.contextmanager
def bounded(max_steps: int) -> Iterator[None]:
    """While inside, checks count subschemas entered and patterns matched against `max_steps`."""
    token = _STEPS.set([0, max_steps])
    try:
        yield
    finally:
        _STEPS.reset(token)


def _step() -> None:
    # One subschema entered or one pattern matched: what a hostile schema multiplies.
    steps = _STEPS.get()
    if steps is not None:
        steps[0] += 1
        if steps[0] > steps[1]:
            raise UncheckableSchemaError(f"checking it takes more than {steps[1]} steps")


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise UncheckableSchemaError(
            f"its pattern {_shown(repr(pattern))} is not supported by Airlock's linear-time matcher (RE2): {reason}"
        ) from None


def _search(pattern: Any, text: str) -> bool:
    if not isinstance(pattern, str):
        raise UncheckableSchemaError(f"a pattern is not a string: {_shown(repr(pattern))}")
    _step()
    return _regex(pattern).search(text) is not None


# Keyword functions with jsonschema's signature and messages, matching with RE2 where the
# originals use Python's backtracking `re`.


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


Validator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "uniqueItems": _unique_items,
    },
)


def _evolve(self: Any, **changes: Any) -> Any:
    # jsonschema's own `evolve` picks the validator class from a subschema's `$schema`, which
    # would bring back the drafts whose keywords use `re`: every subschema is checked as 2020-12,
    # as the schema itself is, and each one entered counts against the budget.
    _step()
    changes.setdefault("schema", self.schema)
    for attribute in fields(type(self)):
        if attribute.init and attribute.alias not in changes:
            changes[attribute.alias] = getattr(self, attribute.name)
    return Validator(**changes)


Validator.evolve = _evolve


def problem(schema: Any, max_parts: int | None = None) -> str | None:
    """Why `schema` cannot be checked with this validator, or None; compiles every pattern it names.

    `max_parts` bounds the walk for a schema nobody has bounded before (a server's output schema).
    """
    uses_pattern_properties = uses_unevaluated = False
    todo: list[Any] = [schema]
    seen = 0
    while todo:
        node = todo.pop()
        seen += 1
        if max_parts is not None and seen > max_parts:
            return f"it has more than {max_parts} parts"
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            try:
                if isinstance(pattern := node.get("pattern"), str):
                    _regex(pattern)
                if isinstance(patterns := node.get("patternProperties"), dict):
                    uses_pattern_properties = True
                    for key in patterns:
                        _regex(key)
            except UncheckableSchemaError as err:
                return str(err)
            uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
            todo.extend(node.values())
    if uses_pattern_properties and uses_unevaluated:
        # jsonschema matches patternProperties with `re` when it works out which properties
        # were evaluated; rather than run a server's pattern there, the pair is refused.
        return "it combines unevaluatedProperties with patternProperties, which Airlock does not check"
    return None
