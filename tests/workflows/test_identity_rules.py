"""Names, patterns and signature lifetimes on their own: pure rules, checked without Temporal.

The attacker types a name another way (case, full-width letters), slips a second `@` past a
service's `*@example.com`, puts control or bidi characters in a name, or presents a signature
issued long ago whose expiry is still ahead. Each is refused, or counted as the one person it is.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activities.approvers import check_approvers, load_directory
from mcp_servers.tomlfiles import ConfigError
from tests.support.tokens import signed_token
from workflows.arguments import arguments_sha256
from workflows.authority import Authority
from workflows.gate import ApprovalGate
from workflows.identity import (
    MAX_LIFETIME_SECONDS,
    AuthorityRefusedError,
    Expected,
    Verifier,
    canonical_name,
    name_matches,
    public_key_entry,
    valid_name,
    valid_pattern,
)
from workflows.payloads import ApprovalConfig, ApprovalRecord, Approve, Directory, PendingApproval, Principal, RunStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAMESPACE, WORKFLOW, RUN = "default", "wf-names", "run-1"
ARGS = {"ticket_id": "T-1", "resolution": "fixed"}
SCHEMA = {"type": "object", "properties": {"ticket_id": {"type": "string"}, "resolution": {"type": "string"}}}
ALICE, INBOX = (Ed25519PrivateKey.from_private_bytes(hashlib.sha256(n).digest()) for n in (b"alice", b"inbox"))


def entry(key: Ed25519PrivateKey) -> str:
    """The `ed25519:` entry of a key's public half."""
    return public_key_entry(key.public_key().public_bytes_raw())


DIRECTORY = Directory(
    people={"alice": Principal(keys=[entry(ALICE)])},
    services={"inbox": Principal(keys=[entry(INBOX)], may_assert=["*@example.com"])},
    groups={"team": ["Bob@Example.com", "carol@example.com"]},
)


def token(key: Ed25519PrivateKey, expected: Expected, *, iss: str, iat: datetime, exp: datetime) -> str:
    """A signature by `key` over the claims `expected` binds, issued by `iss`."""
    return signed_token(
        key,
        iat=iat,
        exp=exp,
        iss=iss,
        sub=expected.approver,
        namespace=expected.namespace,
        workflow_id=expected.workflow_id,
        run_id=expected.run_id,
        call_id=expected.call_id,
        decision=expected.decision,
        arguments_sha256=expected.arguments_sha256,
    )


def expected(approver: str, call_id: str = "c-1") -> Expected:
    """What an approval of call `call_id` with `ARGS` by `approver` must bind."""
    return Expected(
        workflow_id=WORKFLOW,
        call_id=call_id,
        decision="approve",
        approver=approver,
        arguments_sha256=arguments_sha256(ARGS),
        namespace=NAMESPACE,
        run_id=RUN,
    )


def vouched(approver: str, *, iat: datetime = NOW, lifetime: timedelta = timedelta(minutes=10)) -> str:
    """The inbox service's signature for `approver`'s approval of c-1."""
    return token(INBOX, expected(approver), iss="inbox", iat=iat, exp=iat + lifetime)


def gate(requester: str | None = "carol", **config: Any) -> ApprovalGate:
    """A signed gate (DIRECTORY) for agent `support` with the given `[approval]` settings."""
    approval = ApprovalConfig(**config)
    return ApprovalGate(
        lambda _agent: approval,
        lambda _record: SCHEMA,
        Authority(Verifier(DIRECTORY), workflow_id=WORKFLOW, namespace=NAMESPACE, run_id=RUN, requester=requester),
    )


def ask(g: ApprovalGate) -> ApprovalRecord:
    """Gate one close_ticket call, c-1."""
    return g.request(call_id="c-1", agent="support", server="tickets", tool="close_ticket", arguments=ARGS, now=NOW)


def approval(record: ApprovalRecord, approver: str) -> Approve:
    """`approver`'s approval of `record`, signed by the inbox service."""
    return Approve(
        call_id=record.call_id,
        approver=approver,
        arguments_sha256=record.arguments_sha256,
        signature=vouched(approver),
    )


# --- one canonical form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["alice@example.com", "Alice@example.com", "ALICE@EXAMPLE.COM", "\uff41\uff4c\uff49\uff43\uff45@example.com"],
)
def test_every_spelling_of_one_name_is_one_canonical_name(spelling: str) -> None:
    assert canonical_name(spelling) == "alice@example.com"


def test_two_spellings_behind_a_glob_do_not_meet_a_quorum_of_two() -> None:
    g = gate(approvers=[], required=2)
    record = ask(g)
    g.decide(approval(record, "alice@example.com"), NOW)
    for spelling in ("Alice@example.com", "ALICE@EXAMPLE.COM"):
        with pytest.raises(AuthorityRefusedError, match="already approved"):
            g.decide(approval(record, spelling), NOW)
    assert record.decision is None and record.approved_by == ["alice@example.com"]
    g.decide(approval(record, "Bob@example.com"), NOW)
    # Recorded in canonical form: the quorum counts people, not spellings.
    assert (record.decision, record.approved_by, record.decided_by) == (
        "approved",
        ["alice@example.com", "bob@example.com"],
        "bob@example.com",
    )
    assert [e.actor for e in g.audit if e.event == "approved"] == ["alice@example.com", "bob@example.com"]


@pytest.mark.parametrize("spelling", ["ALICE@example.com", "Alice@Example.COM"])
def test_the_requester_in_another_spelling_may_not_approve(spelling: str) -> None:
    g = gate(requester="alice@example.com", approvers=[])
    record = ask(g)
    with pytest.raises(AuthorityRefusedError, match="forbids self-approval"):
        g.decide(approval(record, spelling), NOW)
    assert record.decision is None


def test_a_requester_typed_in_full_width_letters_is_still_its_person() -> None:
    g = gate(requester="\uff21\uff2c\uff29\uff23\uff25@example.com", approvers=[])
    with pytest.raises(AuthorityRefusedError, match="forbids self-approval"):
        g.decide(approval(ask(g), "alice@example.com"), NOW)


def test_approvers_and_group_members_compare_in_canonical_form() -> None:
    g = gate(approvers=["Alice@Example.com", "group:team"], required=2)
    record = ask(g)
    assert g.authority.verifier.members(["Alice@Example.com", "group:team"]) == {
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    }
    g.decide(approval(record, "alice@example.com"), NOW)
    g.decide(approval(record, "BOB@example.com"), NOW)
    assert record.decision == "approved"


def test_an_asserted_decision_counts_one_person_once_too() -> None:
    g = ApprovalGate(
        lambda _agent: ApprovalConfig(approvers=["alice", "bob"], required=2),
        lambda _record: SCHEMA,
        Authority(Verifier(None), workflow_id=WORKFLOW, requester="carol"),
    )
    record = ask(g)
    g.decide(Approve(call_id="c-1", approver="Alice", arguments_sha256=record.arguments_sha256), NOW)
    with pytest.raises(AuthorityRefusedError, match="already approved"):
        g.decide(Approve(call_id="c-1", approver="ALICE", arguments_sha256=record.arguments_sha256), NOW)
    with pytest.raises(AuthorityRefusedError, match="forbids self-approval"):
        g.decide(Approve(call_id="c-1", approver="Carol", arguments_sha256=record.arguments_sha256), NOW)
    assert record.approved_by == ["alice"]


# --- what a name is --------------------------------------------------------------------------

NOT_NAMES = [
    "",
    "evil@x.com@example.com",
    "alice\n",
    "al ice",
    "alice\u202e",  # right-to-left override
    "ali\u200bce",  # zero-width space
    "alice\x1b[2K",
    "\u0430lice",  # Cyrillic a: a look-alike, not a second person
    "\uff41lice",  # full-width: canonically alice, but not how a name is written
    "-alice",
    "alice@",
    "@example.com",
    "a" * 201,
]


@pytest.mark.parametrize("name", NOT_NAMES)
def test_a_name_is_ascii_letters_digits_and_a_few_marks_with_one_at_at_most(name: str) -> None:
    assert not valid_name(name)


@pytest.mark.parametrize("name", ["alice", "Alice@Example.com", "svc-billing", "a.b+c_d@x.y", "a" * 200])
def test_names_people_use_are_valid(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize(
    ("name", "pattern", "matches"),
    [
        ("alice@example.com", "*@example.com", True),
        ("Alice@EXAMPLE.com", "*@example.com", True),
        ("evil@x.com@example.com", "*@example.com", False),
        ("evil@example.com.attacker.net", "*@example.com", False),
        ("alice", "*", True),
        ("alice@example.com", "*", False),
        ("ops-alice@example.com", "ops-*@*", True),
        ("alice@example.com", "ops-*@*", False),
        ("alice", "alice", True),
        ("alicex", "alice", False),
        ("alice@examplexcom", "*@example.com", False),  # `.` is a dot, not "any character"
    ],
)
def test_a_star_in_a_pattern_never_matches_an_at(name: str, pattern: str, matches: bool) -> None:
    assert name_matches(name, pattern) is matches


@pytest.mark.parametrize("pattern", ["*@*@example.com", "al?ce", "[ab]lice", "* @example.com", "*@"])
def test_a_pattern_is_a_name_with_stars_only(pattern: str) -> None:
    assert not valid_pattern(pattern)


def test_a_service_glob_does_not_vouch_for_a_name_with_two_ats() -> None:
    verifier = Verifier(DIRECTORY)
    who = "evil@x.com@example.com"
    with pytest.raises(AuthorityRefusedError, match="not a valid name"):
        verifier.identify(vouched(who), expected(who), NOW)
    # Even when the approver field says something valid, the signed `sub` is checked on its own.
    forged = token(INBOX, expected(who), iss="inbox", iat=NOW, exp=NOW + timedelta(minutes=5))
    with pytest.raises(AuthorityRefusedError):
        verifier.identify(forged, expected("alice@example.com"), NOW)
    assert verifier.identify(vouched("alice@example.com"), expected("alice@example.com"), NOW).person == (
        "alice@example.com"
    )


def test_a_person_may_sign_under_another_spelling_of_their_own_name_only() -> None:
    verifier = Verifier(DIRECTORY)
    mine = expected("Alice")
    signed = token(ALICE, mine, iss="ALICE", iat=NOW, exp=NOW + timedelta(minutes=5))
    assert verifier.identify(signed, mine, NOW).person == "alice"
    other = expected("bob")
    with pytest.raises(AuthorityRefusedError, match="signed for 'bob'"):
        verifier.identify(token(ALICE, other, iss="alice", iat=NOW, exp=NOW + timedelta(minutes=5)), other, NOW)


# --- the approvers file and agents' approver lists -------------------------------------------


def keyed(name: str) -> str:
    """A `[people.<name>]` table with a valid key, the same in every test process (the test ids show it)."""
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
    return f'[people."{name}"]\nkeys = ["{entry(key)}"]\n'


SERVICE = f'[services.inbox]\nkeys = ["{entry(INBOX)}"]\n'


@pytest.mark.parametrize(
    ("toml", "key", "value"),
    [
        (keyed("evil@x.com@example.com"), "'people'", "'evil@x.com@example.com'"),
        (keyed("al\u202eice"), "'people'", "'al\\u202eice'"),
        (keyed("alice") + keyed("Alice"), "'people.Alice'", "is the same name as 'people.alice'"),
        (keyed("inbox") + SERVICE, "'services.inbox'", "is the same name as 'people.inbox'"),
        (SERVICE + 'may_assert = ["*@*@example.com"]\n', "'services.inbox.may_assert[0]'", "'*@*@example.com'"),
        (SERVICE + 'may_assert = ["al?ce"]\n', "'services.inbox.may_assert[0]'", "'al?ce'"),
        (keyed("alice") + '[groups]\nteam = ["alice", "bob carol"]\n', "'groups.team[1]'", "'bob carol'"),
        (keyed("alice") + '[groups]\nteam = ["alice\\u0000"]\n', "'groups.team[0]'", "'alice\\x00'"),
        (keyed("alice") + '[groups]\n"te am" = ["alice"]\n', "'groups'", "'te am'"),
    ],
)
def test_the_approvers_file_refuses_what_is_not_a_name(tmp_path: Path, toml: str, key: str, value: str) -> None:
    path = tmp_path / "approvers.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_directory(path)
    message = str(refused.value)
    assert str(path) in message and f"key {key}" in message and value in message, message


def test_an_agent_approvers_list_refuses_what_is_not_a_name(tmp_path: Path) -> None:
    path = tmp_path / "support.toml"
    with pytest.raises(ConfigError, match=r"key 'approval.approvers\[1\]': 'bob\\n' is not a valid name"):
        check_approvers(["alice", "bob\n"], None, path=path, key="approval.approvers")
    check_approvers(["alice", "Bob@Example.com"], None, path=path, key="approval.approvers")


# --- lifetime --------------------------------------------------------------------------------


def test_a_thirty_day_signature_is_refused_even_in_its_last_week() -> None:
    verifier = Verifier(DIRECTORY)
    who = expected("alice@example.com")
    month = vouched("alice@example.com", iat=NOW - timedelta(days=25), lifetime=timedelta(days=30))
    with pytest.raises(AuthorityRefusedError, match="lifetime beyond"):
        verifier.identify(month, who, NOW)
    week = vouched("alice@example.com", iat=NOW - timedelta(days=6), lifetime=timedelta(seconds=MAX_LIFETIME_SECONDS))
    assert verifier.identify(week, who, NOW).person == "alice@example.com"


def test_a_signature_issued_in_the_future_is_refused() -> None:
    who = expected("alice@example.com")
    ahead = vouched("alice@example.com", iat=NOW + timedelta(hours=1))
    with pytest.raises(AuthorityRefusedError, match="lifetime beyond"):
        Verifier(DIRECTORY).identify(ahead, who, NOW)


# --- the requester is claimed ----------------------------------------------------------------


def test_the_views_and_the_audit_say_the_requester_is_claimed() -> None:
    g = gate(requester="carol", approvers=[])
    ask(g)
    [pending] = g.pending()
    assert (pending.requester, pending.requester_proof) == ("carol", "claimed")
    assert pending.model_dump(mode="json")["requester_proof"] == "claimed"
    [requested] = [e for e in g.audit if e.event == "requested"]
    assert (requested.requester, requested.requester_proof) == ("carol", "claimed")
    status = RunStatus(state="running", agent="support", turn=1, tool_calls=0, requester="carol")
    assert status.model_dump(mode="json")["requester_proof"] == "claimed"
    # A view from an older worker, without the field, still reads as claimed.
    assert PendingApproval.model_validate(pending.model_dump(exclude={"requester_proof"})).requester_proof == "claimed"
