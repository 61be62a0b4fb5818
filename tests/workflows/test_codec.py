"""The payload codec (runtime/codec.py) and the converter built from settings: AES-256-GCM round
trips, rotation, unknown key ids, tampering and wrong keys; the keys file and its mode; what the
converter makes of a payload that does not open (raw when untyped, a named error when typed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from mcp_servers.tomlfiles import ConfigError
from runtime.codec import (
    ENCODING,
    KEY_ID,
    NONCE_BYTES,
    EncryptionCodec,
    Keyring,
    PayloadDecryptionError,
    load_keyring,
    new_key,
    read_secret_file,
)
from runtime.converter import DATA_CONVERTER, data_converter
from runtime.redaction import REDACTED, Redactor
from runtime.settings import Settings
from worker import known_secrets

SECRET = "the vault code is 7-7-1-3"


def plain(text: str = SECRET) -> Payload:
    """A JSON payload as the converter makes it."""
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def ring(**keys: str) -> Keyring:
    """A keyring of `id=base64 key`, in the order given."""
    return Keyring({key_id: base64.b64decode(key) for key_id, key in keys.items()})


def keys_file(path: Path, text: str, mode: int = 0o600) -> Path:
    """A keys file with `text` and `mode`."""
    path.write_text(text)
    path.chmod(mode)
    return path


K1, K2 = new_key(), new_key()


async def test_a_payload_round_trips_and_its_ciphertext_shows_nothing() -> None:
    codec = EncryptionCodec(ring(k1=K1))
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    # The original encoding is sealed inside too: nothing but the key id is readable.
    assert set(sealed.metadata) == {"encoding", KEY_ID}
    assert SECRET.encode() not in sealed.data and b"json/plain" not in sealed.data
    assert await codec.decode([sealed]) == [plain()]
    assert await codec.decode_strict([sealed]) == [plain()]


async def test_every_payload_gets_its_own_nonce() -> None:
    codec = EncryptionCodec(ring(k1=K1))
    sealed = await codec.encode([plain()] * 50)
    nonces = {p.data[:NONCE_BYTES] for p in sealed}
    assert len(nonces) == 50
    assert len({p.data for p in sealed}) == 50


async def test_rotation_the_first_key_seals_and_every_listed_key_opens() -> None:
    old = EncryptionCodec(ring(k1=K1))
    [by_old] = await old.encode([plain("before rotation")])
    rotated = EncryptionCodec(ring(k2=K2, k1=K1))
    [by_new] = await rotated.encode([plain("after rotation")])
    assert by_new.metadata[KEY_ID] == b"k2"
    assert await rotated.decode_strict([by_old, by_new]) == [plain("before rotation"), plain("after rotation")]
    # A codec that has not been given the new key yet cannot open what it sealed, and says which key.
    with pytest.raises(PayloadDecryptionError, match="unknown key id 'k2'"):
        await old.decode_strict([by_new])


async def test_an_unknown_key_id_is_named_and_no_key_is() -> None:
    [sealed] = await EncryptionCodec(ring(retired=K2)).encode([plain()])
    codec = EncryptionCodec(ring(k1=K1))
    with pytest.raises(PayloadDecryptionError) as failure:
        await codec.decode_strict([sealed])
    message = str(failure.value)
    assert "'retired'" in message and "k1" in message
    for key in (K1, K2):
        assert key not in message and base64.b64decode(key).hex() not in message


async def test_tampered_ciphertext_does_not_open() -> None:
    codec = EncryptionCodec(ring(k1=K1))
    [sealed] = await codec.encode([plain()])
    for index in (0, NONCE_BYTES, len(sealed.data) - 1):  # nonce, ciphertext, tag
        data = bytearray(sealed.data)
        data[index] ^= 0x01
        tampered = Payload(metadata=dict(sealed.metadata), data=bytes(data))
        with pytest.raises(PayloadDecryptionError, match="does not open"):
            await codec.decode_strict([tampered])
    cut = Payload(metadata=dict(sealed.metadata), data=sealed.data[: NONCE_BYTES + 3])
    with pytest.raises(PayloadDecryptionError, match="too short"):
        await codec.decode_strict([cut])


async def test_a_key_id_relabelled_to_another_known_key_does_not_open() -> None:
    codec = EncryptionCodec(ring(k1=K1, k2=K2))
    [sealed] = await codec.encode([plain()])
    relabelled = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k2"}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError, match="'k2' does not open"):
        await codec.decode_strict([relabelled])


async def test_the_wrong_key_under_the_same_id_does_not_open() -> None:
    [sealed] = await EncryptionCodec(ring(k1=K1)).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="'k1' does not open"):
        await EncryptionCodec(ring(k1=K2)).decode_strict([sealed])


async def test_payloads_that_are_not_encrypted_pass_through_unchanged() -> None:
    codec = EncryptionCodec(ring(k1=K1))
    odd = Payload(metadata={"encoding": b"binary/null"})
    assert await codec.decode_strict([plain(), odd]) == [plain(), odd]


async def test_decode_leaves_what_does_not_open_as_it_is() -> None:
    # The worker's path: raising here would fail the workflow task on every retry.
    [foreign] = await EncryptionCodec(ring(other=K2)).encode([plain()])
    forged = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=b"\x00" * 40)
    codec = EncryptionCodec(ring(k1=K1))
    assert await codec.decode([foreign, forged, plain()]) == [foreign, forged, plain()]


def test_keys_file_order_sets_the_sealing_key(tmp_path: Path) -> None:
    path = keys_file(tmp_path / "keys.toml", f'# newest first\n2026-12 = "{K2}"\n2026-06 = "{K1}"\n')
    keyring = load_keyring(path)
    assert list(keyring.keys) == ["2026-12", "2026-06"]
    assert keyring.primary == "2026-12"


def test_the_worker_scrubs_its_payload_keys_from_anything_it_writes(tmp_path: Path) -> None:
    path = keys_file(tmp_path / "keys.toml", f'new = "{K2}"\nold = "{K1}"\n')
    redactor = Redactor(known_secrets(Settings(codec_keys_file=path), {}, {}))
    assert redactor.scrub(f"echoed {K1} and {K2}") == f"echoed {REDACTED} and {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no keys"),
        ('k1 = "not base64!"\n', "key 'k1' is not valid base64"),
        (f'k1 = "{base64.b64encode(b"short").decode()}"\n', "key 'k1' is 5 bytes; AES-256 needs 32"),
        ("k1 = 42\n", "key 'k1' must be a base64 string"),
        (f'"bad id" = "{K1}"\n', "'bad id' is not a key id"),
        (f'k1 = "{K1}\n', "invalid TOML"),
    ],
    ids=["empty", "bad base64", "short key", "not a string", "bad id", "bad TOML"],
)  # fixed ids: xdist compares them
def test_a_bad_keys_file_is_named_and_no_key_is_shown(tmp_path: Path, text: str, expected: str) -> None:
    path = keys_file(tmp_path / "keys.toml", text)
    with pytest.raises(ConfigError) as failure:
        load_keyring(path)
    message = str(failure.value)
    assert expected in message and str(path) in message
    assert K1 not in message


def test_a_keys_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = keys_file(tmp_path / "keys.toml", f'k1 = "{K1}"\n', mode=0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\).*chmod 600"):
        load_keyring(path)
    with pytest.raises(ConfigError, match="file not found"):
        read_secret_file(tmp_path / "missing.toml", "AIRLOCK_CODEC_KEYS_FILE")


def test_without_a_keys_file_the_converter_is_the_plain_one(tmp_path: Path) -> None:
    assert data_converter(Settings()) is DATA_CONVERTER
    assert data_converter() is DATA_CONVERTER
    with pytest.raises(ConfigError, match="AIRLOCK_CODEC_KEYS_FILE"):
        data_converter(Settings(codec_keys_file=tmp_path / "nowhere.toml"))


async def test_the_converter_from_settings_encrypts_values_and_failure_messages(tmp_path: Path) -> None:
    converter = data_converter(Settings(codec_keys_file=keys_file(tmp_path / "keys.toml", f'k1 = "{K1}"\n')))
    [sealed] = await converter.encode([{"input": SECRET}])
    assert sealed.metadata["encoding"] == ENCODING and SECRET.encode() not in sealed.SerializeToString()
    assert await converter.decode([sealed], [dict]) == [{"input": SECRET}]
    # Temporal keeps failure messages and stack traces outside payloads unless told to encode them.
    failure = Failure()
    await converter.encode_failure(ApplicationError(SECRET, type="ToolError"), failure)
    assert SECRET.encode() not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == SECRET


async def test_a_payload_that_does_not_open_is_raw_untyped_and_a_named_error_typed(tmp_path: Path) -> None:
    converter = data_converter(Settings(codec_keys_file=keys_file(tmp_path / "keys.toml", f'k1 = "{K1}"\n')))
    [foreign] = await EncryptionCodec(ring(gone=K2)).encode([plain()])
    # Untyped (every workflow handler's argument): a RawValue the workflow refuses with a reason.
    [raw] = await converter.decode([foreign], None)
    assert isinstance(raw, RawValue) and raw.payload == foreign
    # Typed (a query result the CLI reads): an error naming the key id.
    with pytest.raises(PayloadDecryptionError, match="key id 'gone'"):
        await converter.decode([foreign], [dict])
    # The pydantic JSON path still hands undecodable JSON on raw (DATA_CONVERTER's behaviour).
    [still_raw] = await converter.decode([Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")], None)
    assert isinstance(still_raw, RawValue)


async def test_a_client_without_the_codec_gets_a_named_error_not_a_crash() -> None:
    [sealed] = await EncryptionCodec(ring(k1=K1)).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="key id 'k1' could not be decrypted here"):
        await DATA_CONVERTER.decode([sealed], [str])
