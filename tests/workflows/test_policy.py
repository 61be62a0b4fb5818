"""Tool policy rules: a rule names a server and a tool separately, the most specific wins, and
equal matches go to the stricter policy."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mcp.shared.tool_name_validation import TOOL_NAME_REGEX

from activities.policy import STRICTNESS, Rule, resolve, rule_problem
from tests.support.properties import examples
from workflows.payloads import Policy

PROPERTY_SETTINGS = settings(max_examples=examples(300), deadline=None, database=None)
POLICIES: list[Policy] = ["auto", "approve", "deny"]


def untrusted(tool: str, server: str, rules: dict[str, Policy]) -> Policy:
    """The policy of a read-only tool of an untrusted server (whose hint never opens the gate)."""
    return resolve(tool, server, rules, trusted=False, read_only_hint=True)


# --- examples ----------------------------------------------------------------------------------


def test_a_dotted_rule_names_a_server_not_a_prefix_of_the_tool_name() -> None:
    rules: dict[str, Policy] = {"tickets.get_*": "auto"}
    assert untrusted("get_ticket", "tickets", rules) == "auto"
    # The attack: another server's tool literally named `tickets.get_secret`.
    assert untrusted("tickets.get_secret", "hostile", rules) == "approve"
    assert Rule.parse("tickets.get_*") == Rule(server="tickets", tool="get_*")


def test_a_key_splits_at_its_first_dot() -> None:
    assert Rule.parse("*.a.b") == Rule(server="*", tool="a.b")
    assert Rule.parse("close_ticket") == Rule(server=None, tool="close_ticket")
    rules: dict[str, Policy] = {"*.a.b": "deny"}
    assert untrusted("a.b", "crm", rules) == "deny"
    assert untrusted("a.b", "tickets", rules) == "deny"
    assert untrusted("b", "a", rules) == "approve"
    assert untrusted("a.b.c", "crm", rules) == "approve"


def test_an_exact_tool_name_beats_any_glob() -> None:
    assert untrusted("close_ticket", "tickets", {"close_*": "deny", "close_ticket": "auto"}) == "auto"
    # Even a glob scoped to the server: the exact name comes first.
    assert untrusted("close_ticket", "tickets", {"tickets.close_*": "deny", "close_ticket": "auto"}) == "auto"


def test_a_named_server_beats_a_server_glob() -> None:
    rules: dict[str, Policy] = {"*.close_ticket": "deny", "tickets.close_ticket": "auto"}
    assert untrusted("close_ticket", "tickets", rules) == "auto"
    assert untrusted("close_ticket", "crm", rules) == "deny"
    assert untrusted("close_ticket", "tickets", {"tick*.close_ticket": "deny", "tickets.close_*": "auto"}) == "deny"


def test_more_literal_characters_win_among_globs() -> None:
    assert untrusted("close_ticket", "tickets", {"c*": "deny", "close_*": "auto"}) == "auto"
    # A character class is not literal: `[c]lose_*` has fewer literal characters than `close_*`.
    assert untrusted("close_ticket", "tickets", {"[c]lose_*": "deny", "close_*": "auto"}) == "auto"


def test_equal_matches_go_to_the_stricter_policy() -> None:
    assert untrusted("get_tkt", "tickets", {"get_*": "auto", "*_tkt": "deny"}) == "deny"
    assert untrusted("close_ticket", "tickets", {"close_ticket": "auto", "*.close_ticket": "approve"}) == "approve"


def test_defaults_without_a_matching_rule() -> None:
    assert resolve("get_ticket", "tickets", {}, trusted=True, read_only_hint=True) == "auto"
    assert resolve("get_ticket", "tickets", {}, trusted=True, read_only_hint=None) == "approve"
    assert resolve("get_ticket", "crm", {}, trusted=False, read_only_hint=True) == "approve"
    assert resolve("get_ticket", "tickets", {"crm.*": "auto"}, trusted=False, read_only_hint=True) == "approve"


@pytest.mark.parametrize("key", ["get_*", "tickets.get_*", "*.a.b", "tick*.close_ticket", "[gs]et_*", "*", "*.*"])
def test_rule_keys_that_can_match(key: str) -> None:
    assert rule_problem(key, servers=["tickets"], tool_name=TOOL_NAME_REGEX) is None


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        (".get_ticket", "empty"),
        ("tickets.", "empty"),
        ("crm.get_*", "mcp_servers"),
        ("T*.get_*", "mcp_servers"),
        ("get ticket", "no valid MCP tool name"),
        ("tickets.get ticket", "no valid MCP tool name"),
        ("*.[!A-Za-z0-9._-]", "no valid MCP tool name"),
        ("x" * 129, "no valid MCP tool name"),
    ],
)
def test_rule_keys_that_cannot_match(key: str, why: str) -> None:
    problem = rule_problem(key, servers=["tickets"], tool_name=TOOL_NAME_REGEX)
    assert problem is not None and why in problem


# --- properties --------------------------------------------------------------------------------

# Small alphabets, so that generated rules and names often meet.
servers = st.from_regex(r"[ab][ab_-]{0,3}", fullmatch=True)
tools = st.from_regex(r"[ab.][ab._]{0,5}", fullmatch=True)
server_globs = st.lists(st.sampled_from(["a", "b", "_", "*", "?", "[ab]", "[!a]"]), min_size=1, max_size=4).map("".join)
tool_globs = st.lists(st.sampled_from(["a", "b", ".", "_", "*", "?", "[ab]", "[!a]"]), min_size=1, max_size=6).map(
    "".join
)
keys = st.one_of(
    tool_globs.filter(lambda glob: "." not in glob),
    st.builds(lambda server, tool: f"{server}.{tool}", server_globs, tool_globs),
)


def _token(glob: str, text: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(st.just(glob), text)


# A glob drawn together with a tool name it matches: rules that match are too rare by chance.
matching_tool_part_lists = st.lists(
    st.one_of(
        *(_token(char, st.just(char)) for char in "ab._"),
        _token("*", st.text("ab._", max_size=3)),
        _token("?", st.sampled_from("ab._")),
        _token("[ab]", st.sampled_from("ab")),
        _token("[!a]", st.sampled_from("b._")),
    ),
    min_size=1,
    max_size=6,
)


def joined(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """The glob and the tool name that pieces of (glob, matching text) make together."""
    return "".join(glob for glob, _ in parts), "".join(text for _, text in parts)


matching_tool_parts = matching_tool_part_lists.map(joined)
rule_sets = st.dictionaries(keys, st.sampled_from(POLICIES), max_size=6)


def winning_specificity(tool: str, server: str, rules: dict[str, Policy]) -> tuple[int, int, int] | None:
    """The specificity of the best matching rule, or None when no rule matches."""
    found = [Rule.parse(key).specificity for key in rules if Rule.parse(key).matches(server, tool)]
    return max(found, default=None)


@PROPERTY_SETTINGS
@given(server=servers, other=servers, rest=tools, tool_glob=tool_globs, policy=st.sampled_from(POLICIES))
def test_a_dotted_tool_name_never_matches_another_servers_rule(
    server: str, other: str, rest: str, tool_glob: str, policy: Policy
) -> None:
    if server == other:
        other += "b"
    # `server` offers a tool whose name starts with the other server's name and a dot.
    tool = f"{other}.{rest}"
    key = f"{other}.{tool_glob}"
    assert not Rule.parse(key).matches(server, tool)
    assert untrusted(tool, server, {key: policy}) == "approve"


@PROPERTY_SETTINGS
@given(server=servers, tool=tools, server_glob=server_globs, tool_glob=tool_globs)
def test_a_rule_matches_only_when_both_parts_do(server: str, tool: str, server_glob: str, tool_glob: str) -> None:
    rule = Rule.parse(f"{server_glob}.{tool_glob}")
    assert rule.matches(server, tool) == (fnmatchcase(server, server_glob) and fnmatchcase(tool, tool_glob))


@PROPERTY_SETTINGS
@given(rules=rule_sets, key=keys, policy=st.sampled_from(POLICIES), server=servers, tool=tools)
def test_adding_a_rule_never_loosens_an_equally_specific_one(
    rules: dict[str, Policy], key: str, policy: Policy, server: str, tool: str
) -> None:
    assume(key not in rules)
    before = untrusted(tool, server, rules)
    after = untrusted(tool, server, {**rules, key: policy})
    top = winning_specificity(tool, server, rules)
    new = Rule.parse(key)
    if not new.matches(server, tool):
        assert after == before
    elif top is None or new.specificity > top:
        assert after == policy
    else:
        assert STRICTNESS[after] >= STRICTNESS[before]
        if new.specificity == top:
            assert STRICTNESS[after] >= STRICTNESS[policy]
        else:
            assert after == before


@PROPERTY_SETTINGS
@given(
    rules=rule_sets,
    glob=matching_tool_parts,
    server=servers,
    exact=st.sampled_from(POLICIES),
    scoped=st.booleans(),
    glob_scoped=st.booleans(),
)
def test_an_exact_tool_name_beats_a_glob(
    rules: dict[str, Policy], glob: tuple[str, str], server: str, exact: Policy, scoped: bool, glob_scoped: bool
) -> None:
    tool_glob, tool = glob
    assume(tool)
    # Scoped or not, with dots or not: written `server.` or `*.` so a dot in the tool stays its
    # own; the trailing `*` makes it a glob however it was drawn.
    glob_key = f"{server if glob_scoped else '*'}.{tool_glob}*"
    exact_key = f"{server if scoped else '*'}.{tool}"
    others = {key: decided for key, decided in rules.items() if Rule.parse(key).specificity[0] == 0}
    assert untrusted(tool, server, {**others, glob_key: "deny", exact_key: exact}) == exact


@PROPERTY_SETTINGS
@given(
    glob=matching_tool_parts.filter(lambda parts: "." not in parts[0]),
    server=servers,
    first=st.sampled_from(POLICIES),
    second=st.sampled_from(POLICIES),
)
def test_equally_specific_matches_go_to_the_stricter(
    glob: tuple[str, str], server: str, first: Policy, second: Policy
) -> None:
    key, tool = glob
    assume(tool)
    # `tool` and `*.tool` are one rule written two ways: neither is more specific.
    twin = f"*.{key}"
    stricter = max(first, second, key=STRICTNESS.__getitem__)
    assert untrusted(tool, server, {key: first, twin: second}) == stricter
    assert untrusted(tool, server, {twin: first, key: second}) == stricter


@PROPERTY_SETTINGS
@given(parts=matching_tool_part_lists, data=st.data(), server=servers, policies=st.permutations(POLICIES))
def test_two_equally_specific_globs_go_to_the_stricter(
    parts: list[tuple[str, str]], data: st.DataObject, server: str, policies: list[Policy]
) -> None:
    # Two different globs with the same literal characters (the same pieces, shuffled), each
    # matching its own half of one tool name, so both match it and neither is more specific.
    shuffled = data.draw(st.permutations(parts))
    glob_a, tool_a = joined(parts)
    glob_b, tool_b = joined(shuffled)
    key_a, key_b = f"*.{glob_a}*", f"*.*{glob_b}"
    tool = tool_a + tool_b
    assume(key_a != key_b)
    rule_a, rule_b = Rule.parse(key_a), Rule.parse(key_b)
    assert rule_a.specificity == rule_b.specificity
    assert rule_a.matches(server, tool) and rule_b.matches(server, tool)
    decided = untrusted(tool, server, {key_a: policies[0], key_b: policies[1]})
    assert decided == max(policies[:2], key=STRICTNESS.__getitem__)


@PROPERTY_SETTINGS
@given(data=st.data(), rules=rule_sets, server=servers, tool=tools)
def test_the_answer_does_not_depend_on_rule_order(
    data: st.DataObject, rules: dict[str, Policy], server: str, tool: str
) -> None:
    shuffled = dict(data.draw(st.permutations(list(rules.items()))))
    assert untrusted(tool, server, shuffled) == untrusted(tool, server, rules)
