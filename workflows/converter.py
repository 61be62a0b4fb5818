"""The data converter: pydantic models cross the wire as plain JSON, readable by any client.

A payload that cannot be decoded without a type (too deeply nested for pydantic's parser, not
JSON at all) arrives at the workflow as a `RawValue`, where the workflow fails the run or
refuses the message with a reason. Raised here, the error would fail the workflow task on every
retry instead: nothing a caller sends may do that.
"""

from __future__ import annotations

from typing import Any

import temporalio.api.common.v1
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


class _JSONConverter(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON; an untyped payload it cannot parse is handed on raw."""

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        """Decode `payload`, or return it as a `RawValue` when it is untyped and undecodable."""
        try:
            return super().from_payload(payload, type_hint)
        except ValueError:  # pydantic's ValidationError for invalid JSON or too much nesting
            if type_hint is not None and type_hint is not Any:
                raise
            return RawValue(payload)


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with pydantic JSON in place of plain JSON."""

    def __init__(self) -> None:
        """Build the converter chain."""
        super().__init__(*(
            _JSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)
