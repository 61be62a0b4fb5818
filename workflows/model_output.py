"""The model output items a run accepts: Responses-format items the Agents SDK can rebuild.

The model activity checks a reply with `problem` before it is recorded, and the workflow rebuilds
it with the same adapter, so a malformed item fails one activity (a typed `ModelError`) instead
of every workflow task that replays it. Pure: the workflow sandbox loads this module.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseOutputItem
from pydantic import TypeAdapter, ValidationError

from workflows.arguments import NOT_JSON_NOTE, not_json, unreal

OUTPUT_ITEM: TypeAdapter[ResponseOutputItem] = TypeAdapter(ResponseOutputItem)

# A hostile reply chooses what pydantic quotes back (tags, field names); keep only a short reason.
_REASON_LIMIT = 200


def problem(output: list[dict[str, Any]]) -> str | None:
    """Why `output` cannot be rebuilt into SDK items, briefly, or None when every item can.

    An item that is not real JSON (a lone surrogate from a provider's `"\\ud800"`, NaN) is
    refused too: it could not be recorded, or would be recorded as something else.
    """
    for index, item in enumerate(output):
        if (unreal := not_json(item)) is not None:
            return f"output item {index}: not valid JSON: {unreal}"[:_REASON_LIMIT]
        try:
            OUTPUT_ITEM.validate_python(item)
        except ValidationError as err:
            return f"output item {index}: {reason(err)}"
    return None


def tool_calls(output: list[dict[str, Any]]) -> int:
    """How many items of `output` ask for a tool call (`function_call`, `custom_tool_call`, ...)."""
    return sum(1 for item in output if isinstance(item, dict) and str(item.get("type", "")).endswith("_call"))


def reason(err: ValidationError) -> str:
    """The first complaint of a validation error, without the offending input, cut short."""
    first = err.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"[:_REASON_LIMIT]


def only_json(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`output` with the arguments of each tool call that are not real JSON replaced by a note why.

    `{"memo": "\\ud800"}` decodes to a string no encoder takes, and the Agents SDK encodes every
    call's parsed arguments inside the workflow: kept, it would fail every workflow task. The
    note is not JSON, so the call can neither run nor be approved, and the model hears the reason.
    """
    noted = []
    for item in output:
        arguments = item.get("arguments")
        if item.get("type") == "function_call" and isinstance(arguments, str) and (why := unreal(arguments)):
            item = {**item, "arguments": f"{NOT_JSON_NOTE}{why})"}
        noted.append(item)
    return noted
