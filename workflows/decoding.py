"""What callers send, decoded once: JSON values, bounded in depth, validated into payload models.

Pure; used by both workflows for their inputs, signals and updates.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.common import RawValue

from workflows.arguments import depth, not_json
from workflows.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)

# Deeper than any real input; a few hundred bytes of brackets must not reach a parser's limits.
MAX_INPUT_DEPTH = 32
# What a payload sealed by the worker's codec (runtime/codec.py) is marked with.
SEALED_ENCODING = b"binary/encrypted"


class NotJSON(dict[str, str]):
    """A value a caller sent that is not real JSON (NaN, Infinity, a lone surrogate): never an input.

    It keeps only the value's `call_id` and `approver` when they are clean strings, so that the
    refusal can still name them in the audit; `reason` says what is wrong.
    """

    def __init__(self, value: Any, reason: str) -> None:
        super().__init__()
        self.reason = reason
        if isinstance(value, dict):
            for key in ("call_id", "approver"):
                field = value.get(key)
                if isinstance(field, str) and not_json(field) is None:
                    self[key] = field


def received(raw: Any, extra: tuple[Any, ...] = ()) -> Any:
    """What a caller sent as one JSON value: several arguments become a list.

    Handlers take `(raw=None, *extra)` so that no argument, or several, reach them instead of
    failing the workflow task; a payload the converter could not decode arrives as a `RawValue`.
    A value with a non-finite number or a lone surrogate becomes `NotJSON`: kept, it would be
    hashed as one thing and recorded as another (`null`), or fail every task that encodes it.
    """
    value = [raw, *extra] if extra else raw
    if isinstance(value, RawValue):
        value = _undecodable(value)
        if isinstance(value, RawValue):
            return value
    problem = not_json(value)
    return value if problem is None else NotJSON(value, problem)


def _undecodable(raw: RawValue) -> Any:
    if raw.payload.metadata.get("encoding") == SEALED_ENCODING:
        # Sealed but not opened by the codec: its bytes mean nothing, whatever they look like.
        return raw
    try:
        # Pydantic's parser refuses lone surrogates that Python's accepts; `received` judges them.
        return json.loads(raw.payload.data)
    except (ValueError, RecursionError):
        # Not JSON, or deeper than even Python's parser goes: either way, not an input.
        return RawValue(raw.payload)


def parse(model: type[M], value: Any, what: str) -> M:
    """Validate a JSON value as `model`, or raise `InvalidInputError` saying what is wrong."""
    if isinstance(value, model):
        return value
    if isinstance(value, RawValue):
        if value.payload.metadata.get("encoding") == SEALED_ENCODING:
            key_id = value.payload.metadata.get("encryption-key-id", b"").decode(errors="replace")
            raise InvalidInputError(
                f"invalid {what}: encrypted with key id {cut(key_id, 64)!r}, which this worker "
                "cannot decrypt (its AIRLOCK_CODEC_KEYS_FILE lacks the key, or the payload "
                "was altered)"
            )
        raise InvalidInputError(f"invalid {what}: not JSON, or nested far deeper than {MAX_INPUT_DEPTH} levels")
    if isinstance(value, NotJSON):
        raise InvalidInputError(f"invalid {what}: not valid JSON: {value.reason}")
    if depth(value, MAX_INPUT_DEPTH) > MAX_INPUT_DEPTH:
        raise InvalidInputError(f"invalid {what}: nested deeper than {MAX_INPUT_DEPTH} levels")
    try:
        return model.model_validate(value)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in issue['loc']) or '(top level)'}: {issue['msg']}{_got(issue)}"
            for issue in err.errors()[:5]
        )
        raise InvalidInputError(f"invalid {what}: {problems}") from None


def _got(issue: Any) -> str:
    # The offending value, briefly: enough to find the mistake, never a flood in the history.
    if issue["type"] in ("missing", "extra_forbidden") or isinstance(issue.get("input"), dict | list):
        return ""
    shown = repr(issue.get("input"))
    return f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"


def cut(text: object, limit: int = 200) -> str:
    """`text` as a string of at most `limit` characters, marked when cut."""
    shown = str(text)
    return shown if len(shown) <= limit else f"{shown[:limit]}…"
