"""Who decided: the people, services and groups of `approvers.toml`, and signed decisions.

A decision's `approver` is a claim. With an approvers file, a decision counts only with a
`signature`: a compact JWS (EdDSA, Ed25519) by a key listed in the file, whose claims bind the
workflow, the call, the decision, the hash of the arguments the approver saw (and of an edit),
the approver, an expiry and a single-use id. Verification is pure and deterministic (the time
is passed in), so it runs inside the workflow, in update validators and signal handlers alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows.payloads import Directory

KEY_PREFIX = "ed25519:"
AUDIENCE = "airlock"
TOKEN_TYPE = "airlock-decision+jwt"
ALGORITHM = "EdDSA"
MAX_TOKEN_CHARS = 4_000
# A signature says until when it may be used; one that claims more than this is refused, so a
# leaked signature cannot stay good for months.
MAX_LIFETIME_SECONDS = 7 * 24 * 3600
# Clocks of the signer and the Temporal server disagree a little.
CLOCK_SKEW_SECONDS = 300
SHA256_HEX = r"^[0-9a-f]{64}$"
GROUP_PREFIX = "group:"

Kind = Literal["approve", "reject", "answer"]


class AuthorityRefusedError(Exception):
    """The rules of authority refuse a decision, an answer or a call; the message says why.

    Never crosses the wire itself: the run turns it into a `DecisionRefusedError` (an update), a
    `refused` audit entry (a signal), and the worker into `UnauthorizedCallError` or
    `ForgedCheckpointError` (docs/errors.md).
    """


class UnknownKeyError(AuthorityRefusedError):
    """A signature by a key this run does not know (yet): the approvers file may have a new one."""


# A name of a person, a service, a group or a group member, as `approvers.toml`, an agent's
# `approvers` and a signature's `iss`/`sub` may say it: ASCII letters (so a look-alike letter of
# another script cannot be a second person), digits and `_.+-`, at most one `@`, starting with a
# letter or digit on each side of it; no space, control, bidi or invisible character. `\Z`, not
# `$`, so a trailing newline is not a name.
MAX_NAME_CHARS = 200
NAME = re.compile(rf"(?=.{{1,{MAX_NAME_CHARS}}}\Z)[A-Za-z0-9][A-Za-z0-9_.+-]*(?:@[A-Za-z0-9][A-Za-z0-9_.+-]*)?\Z")
NAME_RULE = "a name is ASCII letters, digits and _.+-, at most one @, 1 to 200 characters"
# In a `may_assert` pattern `*` stands for any run of characters but `@`.
WILDCARD = "*"


def canonical_name(name: str) -> str:
    """The one form in which names of people and services are compared (NFKC, case-folded, trimmed).

    `Alice@example.com`, `alice@example.com` and the same in full-width letters are one person:
    quorum, self-approval, `may_assert`, group membership, approvers lists and "already approved"
    compare names in this form, and the names a run records (`approved_by`, `decided_by`, the
    audit's `actor`) are in it. NFKC again after case-folding, as Unicode's NFKC_Casefold does.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


def valid_name(name: str) -> bool:
    """Whether `name` is a name as `NAME_RULE` says (checked on the name as written)."""
    return NAME.match(name) is not None


def valid_pattern(pattern: str) -> bool:
    """Whether a `may_assert` entry is a name, some of whose characters may be `*`."""
    return valid_name(pattern.replace(WILDCARD, "a"))


def name_matches(name: str, pattern: str) -> bool:
    """Whether the valid name `name` is `pattern` (canonical forms), `*` matching any run but `@`.

    Not `fnmatch`: there `*` matches `@` too, so `*@example.com` took `evil@x.com@example.com`,
    and `?` and `[...]` are patterns of their own. Linear in the lengths, without a regex.
    """
    if not valid_name(name):
        return False
    parts = canonical_name(name).split("@")
    globs = canonical_name(pattern).split("@")
    return len(parts) == len(globs) and all(_glob(part, glob) for part, glob in zip(parts, globs, strict=True))


def _glob(text: str, pattern: str) -> bool:
    """`pattern` matches all of `text`, `*` standing for any run of characters (leftmost fit)."""
    first, *middle = pattern.split(WILDCARD)
    if not middle:
        return text == pattern
    last = middle.pop()
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for part in middle:
        found = text.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode URL-safe base64 without padding; anything else raises `ValueError`."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as err:
        raise ValueError("not base64url") from err


def parse_public_key(entry: str) -> bytes:
    """The 32 raw bytes of an `ed25519:<base64>` key entry; anything else raises `ValueError`."""
    if not entry.startswith(KEY_PREFIX):
        raise ValueError(f"a key is '{KEY_PREFIX}<base64 public key>'")
    try:
        raw = base64.b64decode(entry[len(KEY_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("the key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return raw


def public_key_entry(raw: bytes) -> str:
    """The `ed25519:<base64>` entry for a raw public key."""
    return KEY_PREFIX + base64.b64encode(raw).decode()


def key_id(raw: bytes) -> str:
    """A key's id: the first 16 hex digits of the SHA-256 of its raw public bytes."""
    return hashlib.sha256(raw).hexdigest()[:16]


class DecisionClaims(BaseModel):
    """What a signature binds; see docs/identity.md."""

    model_config = ConfigDict(extra="forbid")

    iss: str = Field(min_length=1, max_length=200)
    sub: str = Field(min_length=1, max_length=200)
    aud: Literal["airlock"]
    # The namespace and the run that showed the call: a signature copied into a later run of the
    # same workflow id (or a reset, or another namespace) binds something else there.
    namespace: str = Field(min_length=1, max_length=1_000)
    workflow_id: str = Field(min_length=1, max_length=1_000)
    run_id: str = Field(min_length=1, max_length=200)
    call_id: str = Field(min_length=1, max_length=200)
    decision: Kind
    arguments_sha256: str = Field(pattern=SHA256_HEX)
    edited_sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    # An answer to an input request (decision "answer"): SHA-256 of its canonical {action, content};
    # `arguments_sha256` is then the hash of the question the person saw.
    answer_sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    iat: int
    exp: int
    jti: str = Field(min_length=16, max_length=128)


def signing_input(header: dict[str, Any], claims: DecisionClaims) -> bytes:
    """The bytes an Ed25519 key signs: `b64url(header).b64url(claims)`."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(claims.model_dump_json(exclude_none=True).encode())
    return f"{head}.{body}".encode()


@dataclass(frozen=True)
class Identity:
    """Who a decision is from, and how we know."""

    person: str
    # `signed:<signer>/<key id>` or `asserted`.
    label: str
    token_id: str | None = None


@dataclass(frozen=True)
class _Signer:
    name: str
    kind: Literal["person", "service"]
    key: Ed25519PublicKey
    may_assert: tuple[str, ...]


@dataclass(frozen=True)
class Expected:
    """What a signature must bind to count for one decision."""

    workflow_id: str
    call_id: str
    decision: Kind
    approver: str
    arguments_sha256: str
    edited_sha256: str | None = None
    answer_sha256: str | None = None
    _: KW_ONLY
    namespace: str
    run_id: str


class Verifier:
    """Checks decisions against one approvers directory (None: decisions are only asserted)."""

    def __init__(self, directory: Directory | None) -> None:
        self.directory = directory
        self._signers: dict[str, _Signer] = {}
        if directory is None:
            return
        for kind, table in (("person", directory.people), ("service", directory.services)):
            for name, principal in table.items():
                for entry in principal.keys:
                    raw = parse_public_key(entry)
                    self._signers[key_id(raw)] = _Signer(
                        name=name,
                        kind=kind,  # type: ignore[arg-type]
                        key=Ed25519PublicKey.from_public_bytes(raw),
                        may_assert=tuple(principal.may_assert),
                    )

    @property
    def signed(self) -> bool:
        """Whether decisions must carry a signature."""
        return self.directory is not None

    def members(self, entries: list[str]) -> set[str]:
        """People named by approver entries, in canonical form: names, and `group:<name>` expanded."""
        people: set[str] = set()
        groups = self.directory.groups if self.directory is not None else {}
        for entry in entries:
            if entry.startswith(GROUP_PREFIX):
                people.update(groups.get(entry[len(GROUP_PREFIX) :], []))
            else:
                people.add(entry)
        return {canonical_name(person) for person in people}

    def identify(self, signature: str | None, expected: Expected, now: datetime) -> Identity:
        """The proven identity behind a decision, or `AuthorityRefusedError` saying why it does not count."""
        if self.directory is None:
            if not valid_name(expected.approver):
                raise AuthorityRefusedError(f"the approver is not a valid name ({NAME_RULE})")
            return Identity(person=canonical_name(expected.approver), label="asserted")
        if not signature:
            raise AuthorityRefusedError(
                "unsigned decision: this run accepts only signed decisions (see `airlock sign`)"
            )
        header, claims, signer = self._verified(signature)
        _check_binding(claims, expected, signer, now)
        return Identity(
            person=canonical_name(expected.approver),
            label=f"signed:{signer.name}/{header['kid']}",
            token_id=claims.jti,
        )

    def signed_claims(self, token: str) -> DecisionClaims:
        """The claims of a token made by a key of this directory (`AuthorityRefusedError` otherwise).

        Only the signature is checked: the caller then checks what the claims bind, with `identify`.
        """
        return self._verified(token)[1]

    def _verified(self, token: str) -> tuple[dict[str, Any], DecisionClaims, _Signer]:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise AuthorityRefusedError("malformed signature: not a compact JWS")
        head, body, sig = token.split(".")
        try:
            header = json.loads(unb64url(head))
            payload = json.loads(unb64url(body))
            signature = unb64url(sig)
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise AuthorityRefusedError("malformed signature: not base64url JSON") from None
        if (
            not isinstance(header, dict)
            or header.get("alg") != ALGORITHM
            or header.get("typ") != TOKEN_TYPE
            or not isinstance(header.get("kid"), str)
        ):
            raise AuthorityRefusedError(
                f"malformed signature: the header must say alg {ALGORITHM}, typ {TOKEN_TYPE} and a kid"
            )
        signer = self._signers.get(header["kid"])
        if signer is None:
            raise UnknownKeyError(f"signed by unknown key {header['kid'][:32]!r}")
        try:
            signer.key.verify(signature, f"{head}.{body}".encode())
        except InvalidSignature:
            raise AuthorityRefusedError(f"bad signature: not made by key {header['kid']} of {signer.name!r}") from None
        try:
            claims = DecisionClaims.model_validate(payload)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(claims)"
            raise AuthorityRefusedError(f"malformed signature claims: {where}: {first['msg']}") from None
        return header, claims, signer


def _check_binding(claims: DecisionClaims, expected: Expected, signer: _Signer, now: datetime) -> None:
    bound = {
        "namespace": expected.namespace,
        "workflow_id": expected.workflow_id,
        "run_id": expected.run_id,
        "call_id": expected.call_id,
        "decision": expected.decision,
        "sub": expected.approver,
        "arguments_sha256": expected.arguments_sha256,
        "edited_sha256": expected.edited_sha256,
        "answer_sha256": expected.answer_sha256,
    }
    for claim, value in bound.items():
        if getattr(claims, claim) != value:
            raise AuthorityRefusedError(f"the signature is for another decision: its {claim} differs")
    at = now.timestamp()
    if claims.exp <= at:
        raise AuthorityRefusedError("the signature has expired")
    # Bounded by `iat` too: a 30-day signature is not good in its last 7 days either.
    if (
        claims.exp - claims.iat > MAX_LIFETIME_SECONDS
        or claims.exp > at + MAX_LIFETIME_SECONDS
        or claims.iat > at + CLOCK_SKEW_SECONDS
    ):
        raise AuthorityRefusedError("the signature claims a lifetime beyond what is accepted")
    for claim in ("iss", "sub"):
        if not valid_name(getattr(claims, claim)):
            raise AuthorityRefusedError(f"the signature's {claim} is not a valid name ({NAME_RULE})")
    issuer, subject = canonical_name(claims.iss), canonical_name(claims.sub)
    if signer.kind == "person":
        if issuer != canonical_name(signer.name):
            raise AuthorityRefusedError(f"key of {signer.name!r} claims issuer {claims.iss!r}")
        if subject != canonical_name(signer.name):
            raise AuthorityRefusedError(f"key of {signer.name!r} signed for {claims.sub!r}")
        return
    if issuer != canonical_name(signer.name):
        raise AuthorityRefusedError(f"key of service {signer.name!r} claims issuer {claims.iss!r}")
    if not any(name_matches(claims.sub, pattern) for pattern in signer.may_assert):
        raise AuthorityRefusedError(f"service {signer.name!r} may not assert {claims.sub!r}")
