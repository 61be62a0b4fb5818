"""A tool's `outputSchema` as data, not a program: the bounded validator its results are checked with.

The MCP SDK checks a result's structured content with jsonschema, whose `pattern` keywords run on
Python's backtracking `re`: a server's `"^(\\w+\\s?)*$"` against a long sentence holds the GIL
for hours, and every run on the worker stops. Results are checked with the same validator as
tools' input schemas (workflows/schemas.py: RE2, no retrieval of remote `$ref`s, a budget of
steps). A schema it cannot check that way raises `UncheckedError`: the result is then kept and
marked "not checked", never held up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from jsonschema import ValidationError

from mcp_servers.client.results import OutputChecker
from workflows import schemas

# Subschemas entered and patterns matched while one result is checked. The check runs on the
# worker's event loop, so a schema built to explode (or a huge result) must stop, not hold it.
MAX_STEPS = 100_000

UncheckedError = schemas.UncheckableSchemaError


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
    if (why := schemas.problem(schema, max_parts=MAX_STEPS)) is not None:
        return _Uncheckable(why)
    schemas.Validator.check_schema(schema)
    return schemas.Validator(schema, registry=schemas.NO_RETRIEVAL)


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """While inside, the checks of this context count their steps against `MAX_STEPS`."""
    with schemas.bounded(MAX_STEPS):
        yield


# What the worker gives its MCP pool (mcp_servers/client/results.py) to check results with.
CHECKER = OutputChecker(validator=validator, bounded=bounded, unchecked=UncheckedError)
