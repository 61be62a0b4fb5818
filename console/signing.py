"""Keys and making signatures: Ed25519 key files, and decision JWS exactly as docs/identity.md says.

Verification lives in `workflows.identity` (it runs inside workflows); this module only makes
what that module checks, from the same building blocks, so the two cannot drift apart.

For services deciding from Python (docs/identity.md, "Signing from a service"):

    key = load_private_key(Path("alice.key"))
    pending = await handle.query("pending_approvals")
    payload = sign_review(key, pending[0], workflow_id=handle.id, approver="alice", decision="approve")
    await handle.execute_update("review", payload)
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from console.errors import ConsoleError
from runtime.settings import Settings
from workflows.arguments import arguments_sha256
from workflows.commands import YOU, Signer
from workflows.identity import (
    ALGORITHM,
    TOKEN_TYPE,
    DecisionClaims,
    Kind,
    b64url,
    key_id,
    public_key_entry,
    signing_input,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "DEV_SIGNER",
    "KeyFileError",
    "arguments_sha256",
    "default_key_path",
    "generate_key",
    "key_id_of",
    "load_private_key",
    "printed_signer",
    "public_bytes",
    "public_key_entry",
    "save_private_key",
    "sign_decision",
    "sign_review",
    "toml_entry",
]

DEFAULT_LIFETIME = timedelta(seconds=600)
# The person `python worker.py --dev` signs the CLI's commands for: its inbox's dev identity.
DEV_SIGNER = "alice"
# TOML bare keys: anything else (names may hold `.`, `@`, `+`) must be quoted, or `a.b` would
# silently become a nested table.
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class KeyFileError(ConsoleError):
    """A key file that cannot be written or read as an Ed25519 private key; the message says why."""


def generate_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of the key's public half."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PrivateKey) -> str:
    """The key id a signature by `key` names in its header."""
    return key_id(public_bytes(key))


def default_key_path(name: str) -> Path:
    """Where `airlock keygen NAME` puts a key unless told otherwise."""
    return Path.home() / ".config" / "airlock" / f"{name}.key"


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write `key` as unencrypted PKCS8 PEM, mode 0600 (new directories 0700); never overwrites."""
    _make_private_dirs(path.parent)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # O_EXCL makes "refuse to overwrite" atomic: no window where another key could be replaced.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; keygen never overwrites a key") from None
    except OSError as err:
        raise KeyFileError(f"cannot write {path}: {err.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        # The umask may have narrowed or (if odd) widened the mode given to open.
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)


def _make_private_dirs(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to chmod
        except OSError as err:
            raise KeyFileError(f"cannot create {created}: {err.strerror}") from None
        os.chmod(created, 0o700)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM, PKCS8, unencrypted) from `path`."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise KeyFileError(f"cannot read key {path}: {err.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def toml_entry(name: str, key: Ed25519PrivateKey) -> str:
    """The `[people.NAME]` entry of `approvers.toml` for the key's public half."""
    table = name if _BARE_KEY.match(name) else json.dumps(name)
    return f'[people.{table}]\nkeys = ["{public_key_entry(public_bytes(key))}"]'


def sign_decision(
    private_key: Ed25519PrivateKey,
    *,
    signer: str,
    approver: str,
    namespace: str,
    workflow_id: str,
    run_id: str,
    call_id: str,
    decision: Kind,
    arguments_sha256: str,
    edited_sha256: str | None = None,
    answer_sha256: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: datetime | None = None,
) -> str:
    """A compact JWS (EdDSA) binding one decision on one call, as `workflows.identity` verifies it.

    `namespace` and `run_id` are those of the run that shows the call (its `pending_approvals`
    entry says `run_id`): the signature counts in that run, and in no later run of the same id.
    """
    issued = int((now or datetime.now(UTC)).timestamp())
    claims = DecisionClaims(
        iss=signer,
        sub=approver,
        aud="airlock",
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=run_id,
        call_id=call_id,
        decision=decision,
        arguments_sha256=arguments_sha256,
        edited_sha256=edited_sha256,
        answer_sha256=answer_sha256,
        iat=issued,
        exp=issued + int(lifetime.total_seconds()),
        jti=secrets.token_hex(16),
    )
    header = {"alg": ALGORITHM, "kid": key_id_of(private_key), "typ": TOKEN_TYPE}
    message = signing_input(header, claims)
    return f"{message.decode()}.{b64url(private_key.sign(message))}"


def sign_review(
    private_key: Ed25519PrivateKey,
    call: Mapping[str, Any],
    *,
    workflow_id: str,
    approver: str,
    decision: Literal["approve", "reject"],
    namespace: str = "default",
    signer: str | None = None,
    reason: str = "",
    arguments: dict[str, Any] | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> dict[str, Any]:
    """The signed payload of the `review` update deciding `call`, an entry of `pending_approvals`.

    `call` gives what the approver was shown: `call_id`, `arguments_sha256` and the `run_id` the
    signature binds. `workflow_id` and `namespace` are the run's (a `WorkflowHandle`'s `id`, the
    client's namespace). `signer` is the key's owner when a service vouches for `approver`
    (`[services.NAME] may_assert`); by default the approver signs. `arguments` edits the call.
    """
    run_id = call.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("the pending call has no run_id: its worker predates signed decisions")
    sha = str(call["arguments_sha256"])
    edited = arguments_sha256(arguments) if arguments is not None else None
    if edited == sha:
        # The gate treats an edit equal to the pending arguments as a plain approval.
        arguments, edited = None, None
    payload: dict[str, Any] = {
        "call_id": str(call["call_id"]),
        "approver": approver,
        "arguments_sha256": sha,
        "decision": decision,
        "signature": sign_decision(
            private_key,
            signer=signer or approver,
            approver=approver,
            namespace=namespace,
            workflow_id=workflow_id,
            run_id=run_id,
            call_id=str(call["call_id"]),
            decision=decision,
            arguments_sha256=sha,
            edited_sha256=edited,
            lifetime=lifetime,
        ),
    }
    if reason:
        payload["reason"] = reason
    if arguments is not None:
        payload["arguments"] = arguments
    return payload


def printed_signer(settings: Settings, *, worker: bool = False) -> Signer:
    """Who the commands Airlock prints sign as: on `--dev`'s stack, alice with her dev key.

    `--dev` writes `<data dir>/dev/` (keys, approvers file) and points its worker at that file, so
    a worker knows it serves the dev stack by its approvers file. The CLI, a separate process,
    goes by the dev files next to it, unless it is told of another approvers file. Anywhere else
    a command is for whoever reads it: `--as '<you>'`.
    """
    directory = settings.data_dir / "dev"
    approvers = directory / "approvers.toml"
    key = directory / f"{DEV_SIGNER}.key"
    accepted = (approvers,) if worker else (approvers, None)
    if settings.approvers_file not in accepted or not (approvers.is_file() and key.is_file()):
        return YOU
    return Signer(DEV_SIGNER, str(key))
