"""A tool's `outputSchema` as data, not a program: the bounded validator its results are checked with.

The MCP SDK checks a result's structured content with jsonschema, whose `pattern` keywords run on
Python's backtracking `re`: a server's `"^(\\w+\\s?)*$"` against a long sentence holds the GIL
for hours, and every run on the worker stops. This builds the same jsonschema validator with
patterns matched by RE2 (linear time), no retrieval of remote `$ref`s, and a budget of steps. A
schema it cannot check that way (a pattern RE2 refuses, too much work) raises `UncheckedError`:
the result is then kept and marked "not checked", never held up.

workflows/arguments.py does the same for input schemas inside the workflow; mcp_servers/ may not
import workflows/, so the few keyword functions are kept here too.
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

# Subschemas entered and patterns matched while one result is checked. The check runs on the
# worker's event loop, so a schema built to explode (or a huge result) must stop, not hold it.
MAX_STEPS = 100_000
_SHOWN_PATTERN = 80


class UncheckedError(Exception):
    """A result's structured content that cannot be checked against its schema safely; says why."""


def _refuse_retrieval(uri: str) -> Any:
    # A `$ref` to a URL would make the worker fetch what the server chose.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field, not seen by mypy


_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True

# Steps taken in the check running in this context: [taken]; None outside `bounded`.
_STEPS: ContextVar[list[int] | None] = ContextVar("airlock_output_schema_steps", default=None)


def _step() -> None:
    steps = _STEPS.get()
    if steps is not None:
        steps[0] += 1
        if steps[0] > MAX_STEPS:
            raise UncheckedError(f"checking it takes more than {MAX_STEPS} steps")


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        shown = repr(pattern)[:_SHOWN_PATTERN]
        raise UncheckedError(f"its pattern {shown} is not supported by Airlock's linear-time matcher (RE2)") from None


def _search(pattern: Any, text: str) -> bool:
    if not isinstance(pattern, str):
        raise UncheckedError("a pattern is not a string")
    _step()
    return _regex(pattern).search(text) is not None


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
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # jsonschema compares unhashable items pairwise: quadratic in a result of many objects.
    if unique and validator.is_type(instance, "array") and len({_same(item) for item in instance}) < len(instance):
        yield ValidationError("the array has non-unique elements")


def _same(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when JSON Schema calls two values equal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", value)
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


def _evolve(self: Any, **changes: Any) -> Any:
    # jsonschema's own `evolve` picks a class from a subschema's `$schema`, whose keywords would
    # use `re` again: every subschema is checked by this class, and each one entered is a step.
    _step()
    changes.setdefault("schema", self.schema)
    for attribute in fields(type(self)):
        if attribute.init and attribute.alias not in changes:
            changes[attribute.alias] = getattr(self, attribute.name)
    return _Validator(**changes)


_Validator.evolve = _evolve


def _problem(schema: Any) -> str | None:
    """Why `schema` cannot be checked with RE2, or None; compiles every pattern it names."""
    uses_pattern_properties = uses_unevaluated = False
    todo: list[Any] = [schema]
    seen = 0
    while todo:
        node = todo.pop()
        seen += 1
        if seen > MAX_STEPS:
            return f"it has more than {MAX_STEPS} parts"
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
            except UncheckedError as err:
                return str(err)
            uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
            todo.extend(node.values())
    if uses_pattern_properties and uses_unevaluated:
        # jsonschema matches patternProperties with `re` when it works out which were evaluated.
        return "it combines unevaluatedProperties with patternProperties"
    return None


class _Uncheckable:
    """Stands in for a validator of a schema that cannot be checked safely: says why when used."""

    def __init__(self, why: str) -> None:
        self.why = why

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        raise UncheckedError(self.why)


def validator(schema: dict[str, Any]) -> Any:
    """A validator for `schema` with bounded patterns and no retrieval (checked as JSON Schema 2020-12).

    Raises `jsonschema.SchemaError` for a schema that is not one. One whose patterns RE2 cannot
    run gives a validator whose `iter_errors` raises `UncheckedError`.
    """
    if (why := _problem(schema)) is not None:
        return _Uncheckable(why)
    _Validator.check_schema(schema)
    return _Validator(schema, registry=_NO_RETRIEVAL)


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """While inside, the checks of this context count their steps against `MAX_STEPS`."""
    token = _STEPS.set([0])
    try:
        yield
    finally:
        _STEPS.reset(token)
