"""The data converter: pydantic models cross the wire as plain JSON, readable by any client.

A payload that cannot be decoded without a type (too deeply nested for pydantic's parser, not
JSON at all) arrives at the workflow as a `RawValue`, where the workflow fails the run or
refuses the message with a reason. Raised here, the error would fail the workflow task on every
retry instead: nothing a caller sends may do that. The same holds for an encrypted payload the
codec could not open (runtime.codec): untyped, it arrives raw; typed, it fails naming its key id.

`data_converter(settings)` is the one place a converter is built, for the worker, the `airlock`
CLI and the inbox alike: with `AIRLOCK_CODEC_KEYS_FILE` set, payloads are encrypted, and so are
failure messages and stack traces (Temporal keeps those outside payloads unless told).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.common.v1
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)

from runtime import codec
from runtime.settings import Settings


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


class _SealedConverter(EncodingPayloadConverter):
    """A payload still encrypted after the codec: raw when untyped, a named error when typed."""

    @property
    def encoding(self) -> str:
        """The encoding the codec gives what it seals."""
        return codec.ENCODING.decode()

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        """Never chosen to encode: sealing is the codec's work."""
        return None

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        """`payload` as a `RawValue`, or `PayloadDecryptionError` when a type was expected."""
        if type_hint is None or type_hint is Any:
            return RawValue(payload)
        raise codec.PayloadDecryptionError(
            f"payload encrypted with key id {codec.key_id_of(payload)!r} could not be decrypted here (no codec, "
            "or AIRLOCK_CODEC_KEYS_FILE lacks that key; the log says which)"
        )


# Built once and shared: Temporal's worker constructs a data converter, and so this chain, twice
# for every workflow activation; the converters hold no per-use state (the pydantic one a cache
# of type adapters, better shared).
_CHAIN: tuple[EncodingPayloadConverter, ...] = (
    *(
        _JSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
        for c in DefaultPayloadConverter.default_encoding_payload_converters
    ),
    _SealedConverter(),
)


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with pydantic JSON in place of plain JSON."""

    def __init__(self) -> None:
        """The shared converter chain."""
        super().__init__(*_CHAIN)


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def data_converter(settings: Settings | None = None) -> DataConverter:
    """The converter for these settings: pydantic JSON, encrypted when a keys file is set."""
    if settings is None or settings.codec_keys_file is None:
        return DATA_CONVERTER
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=codec.EncryptionCodec(codec.load_keyring(settings.codec_keys_file)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
