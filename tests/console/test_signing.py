"""Signatures made by `console.signing` are exactly what `workflows.identity.Verifier` accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from console.signing import (
    arguments_sha256,
    generate_key,
    key_id_of,
    load_private_key,
    public_bytes,
    save_private_key,
    sign_decision,
)
from tests.support.properties import examples
from workflows.identity import (
    AuthorityRefusedError,
    Expected,
    UnknownKeyError,
    Verifier,
    b64url,
    public_key_entry,
    unb64url,
)
from workflows.payloads import Directory, Principal

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
ALICE, BOB, INBOX, STRANGER = generate_key(), generate_key(), generate_key(), generate_key()
SHA = arguments_sha256({"ticket_id": "T-1"})
EDITED = arguments_sha256({"ticket_id": "T-1", "resolution": "duplicate"})
DIRECTORY = Directory(
    people={
        "alice": Principal(keys=[public_key_entry(public_bytes(ALICE))]),
        "bob": Principal(keys=[public_key_entry(public_bytes(BOB))]),
    },
    services={"inbox": Principal(keys=[public_key_entry(public_bytes(INBOX))], may_assert=["alice", "*@example.com"])},
)
VERIFIER = Verifier(DIRECTORY)
EXPECTED = Expected(
    workflow_id="wf-1",
    call_id="call-support-1",
    decision="approve",
    approver="alice",
    arguments_sha256=SHA,
    namespace="default",
    run_id="run-1",
)
# Claims and the values that would be "another decision" for each.
CLAIM_FIELDS = (
    "iss",
    "sub",
    "aud",
    "namespace",
    "workflow_id",
    "run_id",
    "call_id",
    "decision",
    "arguments_sha256",
    "edited_sha256",
    "iat",
    "exp",
    "jti",
)


def alice_signs(**overrides: Any) -> str:
    """Alice's signature for EXPECTED at NOW, with some arguments of `sign_decision` changed."""
    options: dict[str, Any] = {
        "signer": "alice",
        "approver": "alice",
        "namespace": "default",
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "call_id": "call-support-1",
        "decision": "approve",
        "arguments_sha256": SHA,
        "now": NOW,
    }
    options.update(overrides)
    key = options.pop("key", ALICE)
    return sign_decision(key, **options)


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, claims and the signature segment of a compact JWS."""
    head, body, sig = token.split(".")
    return json.loads(unb64url(head)), json.loads(unb64url(body)), sig


def assemble(header: dict[str, Any], claims: dict[str, Any], sig: str) -> str:
    """A compact JWS from parts, signature segment as given (not recomputed)."""
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), sig])


def resign(key: Ed25519PrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS over arbitrary header and claims, really signed by `key`."""
    message = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{message}.{b64url(key.sign(message.encode()))}"


def refusal(token: str, expected: Expected = EXPECTED, now: datetime = NOW) -> str:
    """Why the verifier refuses `token`; the test fails if it is accepted."""
    with pytest.raises(AuthorityRefusedError) as refused:
        VERIFIER.identify(token, expected, now)
    return str(refused.value)


def test_a_signature_counts_for_exactly_the_decision_it_binds() -> None:
    token = alice_signs()
    header, claims, _ = parts(token)
    assert header == {"alg": "EdDSA", "kid": key_id_of(ALICE), "typ": "airlock-decision+jwt"}
    assert claims["aud"] == "airlock" and claims["iss"] == claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 600 and claims["iat"] == int(NOW.timestamp())
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0
    assert "edited_sha256" not in claims
    identity = VERIFIER.identify(token, EXPECTED, NOW)
    assert identity.person == "alice"
    assert identity.label == f"signed:alice/{key_id_of(ALICE)}"
    assert identity.token_id == claims["jti"]
    # The same signature for any other decision is refused, each naming what differs.
    others = {
        "namespace": Expected(**{**EXPECTED.__dict__, "namespace": "other"}),
        "workflow_id": Expected(**{**EXPECTED.__dict__, "workflow_id": "wf-2"}),
        "run_id": Expected(**{**EXPECTED.__dict__, "run_id": "run-2"}),
        "call_id": Expected(**{**EXPECTED.__dict__, "call_id": "call-support-2"}),
        "decision": Expected(**{**EXPECTED.__dict__, "decision": "reject"}),
        "sub": Expected(**{**EXPECTED.__dict__, "approver": "bob"}),
        "arguments_sha256": Expected(**{**EXPECTED.__dict__, "arguments_sha256": EDITED}),
        "edited_sha256": Expected(**{**EXPECTED.__dict__, "edited_sha256": EDITED}),
    }
    for claim, expected in others.items():
        assert refusal(token, expected) == f"the signature is for another decision: its {claim} differs"


def test_an_edit_is_bound_by_its_own_hash() -> None:
    token = alice_signs(edited_sha256=EDITED)
    assert parts(token)[1]["edited_sha256"] == EDITED
    edited = Expected(**{**EXPECTED.__dict__, "edited_sha256": EDITED})
    assert VERIFIER.identify(token, edited, NOW).person == "alice"
    assert "edited_sha256 differs" in refusal(token)  # an approval without the edit is another decision


def test_every_signature_is_unique() -> None:
    ids = {parts(alice_signs())[1]["jti"] for _ in range(50)}
    assert len(ids) == 50


def test_time_audience_and_binding_are_refused_with_distinct_reasons() -> None:
    header, claims, _ = parts(alice_signs())
    reasons = {
        "expired": refusal(alice_signs(), now=NOW + timedelta(seconds=601)),
        "too long": refusal(alice_signs(lifetime=timedelta(days=8))),
        "from the future": refusal(alice_signs(now=NOW + timedelta(hours=1))),
        "audience": refusal(resign(ALICE, header, {**claims, "aud": "elsewhere"})),
        "workflow": refusal(alice_signs(workflow_id="wf-other")),
        "call": refusal(alice_signs(call_id="call-other")),
        "decision": refusal(alice_signs(decision="reject")),
        "hash": refusal(alice_signs(arguments_sha256=EDITED)),
        "approver": refusal(alice_signs(approver="bob")),
        "unsigned": refusal(""),
    }
    assert reasons["expired"] == "the signature has expired"
    beyond = "the signature claims a lifetime beyond what is accepted"
    assert reasons["too long"] == reasons["from the future"] == beyond
    assert reasons["audience"].startswith("malformed signature claims: aud")
    assert reasons["approver"] == "the signature is for another decision: its sub differs"
    del reasons["from the future"]  # the same rule as "too long", by design
    assert len(set(reasons.values())) == len(reasons), reasons
    # Just inside the window is accepted: the bounds above are the verifier's, not an accident.
    assert VERIFIER.identify(alice_signs(), EXPECTED, NOW + timedelta(seconds=599)).person == "alice"
    assert VERIFIER.identify(alice_signs(lifetime=timedelta(days=7)), EXPECTED, NOW).person == "alice"


def test_a_person_signs_only_for_themself() -> None:
    token = alice_signs(approver="bob")
    bob_expected = Expected(**{**EXPECTED.__dict__, "approver": "bob"})
    assert refusal(token, bob_expected) == "key of 'alice' signed for 'bob'"
    assert "key of 'alice'" in refusal(alice_signs(signer="inbox"))


def test_a_service_key_signs_only_for_people_it_may_assert() -> None:
    for person in ("alice", "dana@example.com"):
        token = alice_signs(key=INBOX, signer="inbox", approver=person)
        identity = VERIFIER.identify(token, Expected(**{**EXPECTED.__dict__, "approver": person}), NOW)
        assert (identity.person, identity.label) == (person, f"signed:inbox/{key_id_of(INBOX)}")
    for person in ("bob", "dana@example.org", "example.com"):
        token = alice_signs(key=INBOX, signer="inbox", approver=person)
        reason = refusal(token, Expected(**{**EXPECTED.__dict__, "approver": person}))
        assert reason == f"service 'inbox' may not assert {person!r}"
    # A service's key must say it is the service that signs.
    assert refusal(alice_signs(key=INBOX, signer="alice")) == "key of service 'inbox' claims issuer 'alice'"


def test_keys_round_trip_through_their_file(tmp_path: Any) -> None:
    path = tmp_path / "keys" / "alice.key"
    save_private_key(ALICE, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public_bytes(load_private_key(path)) == public_bytes(ALICE)


# --- any change is refused (property tests) ------------------------------------------------------

SHA_TEXT = st.text("0123456789abcdef", min_size=64, max_size=64)
NEW_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "iss": st.text(min_size=1, max_size=20),
    "sub": st.text(min_size=1, max_size=20),
    "aud": st.text(max_size=20),
    "namespace": st.text(min_size=1, max_size=40),
    "workflow_id": st.text(min_size=1, max_size=40),
    "run_id": st.text(min_size=1, max_size=40),
    "call_id": st.text(min_size=1, max_size=40),
    "decision": st.sampled_from(["reject", "answer", "approve "]),
    "arguments_sha256": SHA_TEXT,
    "edited_sha256": SHA_TEXT | st.none(),
    "iat": st.integers(-(2**40), 2**40),
    "exp": st.integers(-(2**40), 2**40),
    "jti": st.text(min_size=1, max_size=130),
}


@st.composite
def tampered_claims(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """The original claims of a good signature and a copy with 1+ claims changed or removed."""
    _, claims, _ = parts(alice_signs())
    changed = dict(claims)
    for name in draw(st.lists(st.sampled_from(CLAIM_FIELDS), min_size=1, max_size=4, unique=True)):
        value = draw(NEW_VALUES[name])
        if draw(st.booleans()) and name in changed:
            changed.pop(name)
        elif value is None:
            changed.pop(name, None)
        else:
            changed[name] = value
    if changed == claims:
        changed["jti"] = claims["jti"] + "0"
    return claims, changed


def expected_for(claims: dict[str, Any]) -> Expected:
    """What a verifier would expect if the (tampered) claims were the truth: the binding matches."""

    def text(name: str, default: str) -> str:
        value = claims.get(name, default)
        return value if isinstance(value, str) else default

    decision = claims.get("decision")
    return Expected(
        workflow_id=text("workflow_id", "wf-1"),
        call_id=text("call_id", "call-support-1"),
        decision=decision if decision in ("approve", "reject", "answer") else "approve",
        approver=text("sub", "alice"),
        arguments_sha256=text("arguments_sha256", SHA),
        edited_sha256=claims.get("edited_sha256") if isinstance(claims.get("edited_sha256"), str) else None,
        namespace=text("namespace", "default"),
        run_id=text("run_id", "run-1"),
    )


@settings(database=None, max_examples=examples(150), deadline=None)
@given(tampered_claims())
def test_claims_edited_after_signing_are_refused(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, changed = pair
    header, _, sig = parts(alice_signs())
    # Even a verifier expecting exactly the edited decision refuses: the signature is Alice's over
    # other bytes.
    reason = refusal(assemble(header, changed, sig), expected_for(changed))
    assert reason == f"bad signature: not made by key {key_id_of(ALICE)} of 'alice'"


@settings(database=None, max_examples=examples(100), deadline=None)
@given(tampered_claims(), st.sampled_from(["stranger", "bob claiming alice's kid", "bob as himself"]))
def test_claims_resigned_by_another_key_are_refused(pair: tuple[dict[str, Any], dict[str, Any]], who: str) -> None:
    original, changed = pair
    header, _, _ = parts(alice_signs())
    if who == "stranger":
        with pytest.raises(UnknownKeyError):
            VERIFIER.identify(
                resign(STRANGER, {**header, "kid": key_id_of(STRANGER)}, changed), expected_for(changed), NOW
            )
        return
    if who == "bob claiming alice's kid":
        reason = refusal(resign(BOB, header, changed), expected_for(changed))
        assert reason.startswith("bad signature")
        return
    # Bob's own valid key, over Alice's original claims or the edited ones: never Alice's decision.
    refusal(resign(BOB, {**header, "kid": key_id_of(BOB)}, original))
    try:
        token = resign(BOB, {**header, "kid": key_id_of(BOB)}, changed)
        identity = VERIFIER.identify(token, expected_for(changed), NOW)
    except AuthorityRefusedError:
        return
    assert (identity.person, identity.label) == ("bob", f"signed:bob/{key_id_of(BOB)}")


HEADER_VALUES = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5u"]),
    st.text(max_size=20) | st.integers() | st.none(),
    min_size=1,
)


@settings(database=None, max_examples=examples(150), deadline=None)
@given(HEADER_VALUES)
def test_a_changed_header_is_refused(change: dict[str, Any]) -> None:
    header, claims, sig = parts(alice_signs())
    changed = {**header, **change}
    if changed == header:
        changed["typ"] = "JWT"
    refusal(assemble(changed, claims, sig))
