"""What a run carries into its next history when it continues as new, kept under a stated budget.

The Agents SDK's `RunState` JSON repeats every tool output of the conversation in several places,
so a run of big reads would carry several times their size and its next run's first workflow task
would fail on Temporal's payload limit, forever. Older tool outputs are cut with a marker, oldest
first, until the state fits; the recent ones stay whole. Pure JSON work: deterministic, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from workflows.errors import PayloadTooLargeError
from workflows.limits import MAX_CARRIED_STATE_BYTES, MAX_CHECKPOINT_BYTES, TEMPORAL_PAYLOAD_BYTES
from workflows.payloads import Checkpoint

# What an older output keeps of its start, so the model still sees what it was.
KEPT_CHARS = 200
# Outputs of this many most recent tool calls are never cut.
RECENT_CALLS = 1
# Item kinds whose `output` is a tool's result (a raw Responses item, and the SDK's run item).
_OUTPUT_KINDS = frozenset({"function_call_output", "tool_call_output_item"})
MARKER = "[airlock: older tool output cut when the run continued as new;"


def fit_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """`checkpoint` with its conversation cut to `MAX_CARRIED_STATE_BYTES`, checked whole against its limit.

    Raises:
        PayloadTooLargeError: even cut, the checkpoint is over `MAX_CHECKPOINT_BYTES`.
    """
    fitted = checkpoint.model_copy(update={"run_state": bounded_state(checkpoint.run_state)})
    size = len(fitted.model_dump_json().encode())
    if size > MAX_CHECKPOINT_BYTES:
        raise PayloadTooLargeError(
            f"the run cannot continue as new: what it carries is {size} bytes even with older tool outputs cut, "
            f"over the {MAX_CHECKPOINT_BYTES}-byte checkpoint budget (Temporal's payload limit is "
            f"{TEMPORAL_PAYLOAD_BYTES} bytes)"
        )
    return fitted


def bounded_state(run_state: str, budget: int = MAX_CARRIED_STATE_BYTES) -> str:
    """`run_state` (RunState JSON) unchanged if it fits `budget` bytes, else with older tool outputs cut.

    May still be over `budget` when what is left is not tool output; the caller checks the total.
    """
    size = len(run_state.encode())
    if size <= budget:
        return run_state
    state = json.loads(run_state)
    slots: dict[str, list[dict[str, Any]]] = {}
    for item in _outputs(state):
        slots.setdefault(_call_id(item), []).append(item)
    # First seen first: the state lists the conversation in order, so this is oldest first.
    older = list(slots)[: max(len(slots) - RECENT_CALLS, 0)]
    for call_id in older:
        for item in slots[call_id]:
            before = len(json.dumps(item["output"]).encode())
            item["output"] = _cut(item["output"])
            size -= before - len(json.dumps(item["output"]).encode())
        if size <= budget:
            break
    return json.dumps(state)


def _outputs(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in `node` that holds a tool's output, in document order (iterative: no recursion)."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("type") in _OUTPUT_KINDS and "output" in current:
                yield current
            stack.extend(reversed(list(current.values())))
        elif isinstance(current, list):
            stack.extend(reversed(current))


def _call_id(item: dict[str, Any]) -> str:
    raw = item.get("raw_item")
    call_id = item.get("call_id") or (raw.get("call_id") if isinstance(raw, dict) else None)
    return str(call_id) if call_id is not None else f"item-{id(item)}"


def _text_of(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        # Text and image parts (`input_text`, `input_image`): an image's data is not worth keeping.
        return "\n".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    return json.dumps(output)


def _cut(output: Any) -> Any:
    whole = len(json.dumps(output).encode())
    if whole <= KEPT_CHARS + len(MARKER) + 40 or (isinstance(output, str) and MARKER in output):
        return output  # short already, or cut by an earlier continue-as-new
    return f"{_text_of(output)[:KEPT_CHARS]}\n{MARKER} {whole} bytes were not carried]"
