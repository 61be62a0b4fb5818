"""The model output items a run accepts: Responses-format items the Agents SDK can rebuild.

The model activity checks a reply with `problem` before it is recorded, and the workflow rebuilds
it with the same adapter, so a malformed item fails one activity (a typed `ModelError`) instead
of every workflow task that replays it. Pure: the workflow sandbox loads this module.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseOutputItem
from pydantic import TypeAdapter, ValidationError

OUTPUT_ITEM: TypeAdapter[ResponseOutputItem] = TypeAdapter(ResponseOutputItem)

# A hostile reply chooses what pydantic quotes back (tags, field names); keep only a short reason.
_REASON_LIMIT = 200


def problem(output: list[dict[str, Any]]) -> str | None:
    """Why `output` cannot be rebuilt into SDK items, briefly, or None when every item can."""
    for index, item in enumerate(output):
        try:
            OUTPUT_ITEM.validate_python(item)
        except ValidationError as err:
            return f"output item {index}: {reason(err)}"
    return None


def reason(err: ValidationError) -> str:
    """The first complaint of a validation error, without the offending input, cut short."""
    first = err.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"[:_REASON_LIMIT]
