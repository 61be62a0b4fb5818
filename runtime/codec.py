"""Payload encryption: a Temporal `PayloadCodec` that seals every payload with AES-256-GCM.

Each payload is serialised whole (its metadata too, so not even the encoding shows), sealed with
a fresh random 96-bit nonce under the first key of the keyring, and sent as a payload whose
metadata says `encoding: binary/encrypted` and which key sealed it (`encryption-key-id`).
Rotation is adding a key in front: new payloads use it, payloads sealed with any listed key
still open. Keys live in a file on the worker and the codec server (`AIRLOCK_CODEC_KEYS_FILE`),
never in workflow input, history or logs; errors name a key id, never a key.

Inside a worker, whatever a caller sends passes this codec before any workflow code runs, and a
codec that raises fails the workflow task on every retry. So `decode` leaves a payload it cannot
open as it is (logging why): the converter hands it to the workflow as a `RawValue`, which
refuses it like any undecodable input, or fails with `PayloadDecryptionError` where a type was
expected. `decode_strict` (the codec server's) raises instead.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from mcp_servers.tomlfiles import ConfigError, read_toml
from workflows.decoding import SEALED_ENCODING

# Standard logging, not structlog: the `airlock` CLI decodes too, and its stdout is for output only;
# the worker routes these records into its one JSON stream (runtime.logs).
log = logging.getLogger(__name__)

ENCODING = SEALED_ENCODING
KEY_ID = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's native nonce size
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A key id shown in an error came from a payload, so from anyone who can send one.
_SHOWN_KEY_ID = 64


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be opened: unknown key id, wrong key, or altered bytes."""


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys in file order: the first seals, every one opens."""

    keys: dict[str, bytes]
    source: str = "AIRLOCK_CODEC_KEYS_FILE"

    def __post_init__(self) -> None:
        """Refuse an empty keyring or a key of the wrong size (naming its id)."""
        if not self.keys:
            raise ConfigError(f'{self.source}: no keys (add a line `KEY_ID = "<base64 of 32 random bytes>"`)')
        for key_id, key in self.keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise ConfigError(
                    f"{self.source}: key id {key_id[:_SHOWN_KEY_ID]!r} is not a key id (1 to 64 of A-Z a-z 0-9 _ . -)"
                )
            if len(key) != KEY_BYTES:
                raise ConfigError(f"{self.source}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")

    @property
    def primary(self) -> str:
        """The id of the key that seals new payloads."""
        return next(iter(self.keys))


def new_key() -> str:
    """A fresh key, base64, as it goes into the keys file."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def read_secret_file(path: Path, setting: str) -> bytes:
    """The bytes of a file that holds secrets, refused unless only its owner may read it (0600).

    The error names the setting, the file and its mode, and says how to fix it; never the content.
    """
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{setting}: {path} is not a regular file")
        if mode & 0o077:
            raise ConfigError(
                f"{setting}: {path} is readable by others (mode {stat.S_IMODE(mode):04o}); it holds "
                f"secrets: `chmod 600 {path}`"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{setting}: {path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{setting}: {path}: permission denied") from None


def load_keyring(path: Path, setting: str = "AIRLOCK_CODEC_KEYS_FILE") -> Keyring:
    """Read a keys file: TOML lines `KEY_ID = "<base64 key>"`, the sealing key first."""
    read_secret_file(path, setting)
    source = f"{setting} {path}"
    # read_toml's errors give line and column, never the text of the line.
    table = read_toml(path)
    keys: dict[str, bytes] = {}
    for key_id, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{source}: key {key_id[:_SHOWN_KEY_ID]!r} must be a base64 string")
        try:
            keys[key_id] = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{source}: key {key_id[:_SHOWN_KEY_ID]!r} is not valid base64") from None
    return Keyring(keys, source)


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, with key ids for rotation."""

    def __init__(self, keyring: Keyring) -> None:
        """Seal with `keyring.primary`; open with any key of `keyring`."""
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Seal each payload under the primary key, with its own random nonce."""
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Open each encrypted payload; plain ones, and ones that do not open, pass as they are."""
        opened = []
        for payload in payloads:
            try:
                opened.append(self.open(payload))
            except PayloadDecryptionError as err:
                log.warning("payload not decrypted: %s", err)
                opened.append(payload)
        return opened

    async def decode_strict(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Open each encrypted payload (plain ones pass); raise `PayloadDecryptionError` on the first that fails."""
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        """`payload` encrypted under the primary key."""
        key_id = self.keyring.primary
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        """The payload `payload` sealed, or `payload` itself when it is not encrypted."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = key_id_of(payload)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with unknown key id {key_id!r} ({self.keyring.source} has "
                f"{', '.join(self.keyring.keys)})"
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"payload encrypted with key id {key_id!r} is too short to be one")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} does not open with that key: altered, or sealed "
                "with another key of the same id"
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError:
            # Authentic bytes that are not a payload: sealed by something other than this codec.
            raise PayloadDecryptionError(f"payload encrypted with key id {key_id!r} holds no payload") from None


def key_id_of(payload: Payload) -> str:
    """The key id an encrypted payload names, made printable and short (it may come from anyone)."""
    raw = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
    shown = "".join(ch if ch.isprintable() else "?" for ch in raw[:_SHOWN_KEY_ID])
    return shown + ("…" if len(raw) > _SHOWN_KEY_ID else "")
