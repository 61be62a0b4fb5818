"""Tool policy: which tools run freely, which wait for approval, which are never shown.

A tool's identity is the pair (server, tool). A `[tools]` key without a dot is a tool-name glob
for any server; a key with a dot is `<server glob>.<tool glob>`, split at the first dot. Server
names cannot contain dots, so a tool whose own name contains dots (`tickets.get_secret` on some
other server) never matches another server's rule. Pure: workflow-side code may import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from workflows.payloads import Policy

STRICTNESS: dict[Policy, int] = {"auto": 0, "approve": 1, "deny": 2}
"""How strict each policy is: when two rules match equally well, the stricter one wins."""

_WILDCARDS = ("*", "?")


def _tokens(glob: str) -> list[str]:
    """`glob` cut into `*`, `?`, `[...]` classes and single literal characters, as fnmatch reads it."""
    tokens: list[str] = []
    i = 0
    while i < len(glob):
        if glob[i] == "[":
            # The same scan as `fnmatch.translate`: `[!` negates, a `]` right after the opening
            # is a member, and a `[` that is never closed is a literal character.
            j = i + 1
            if j < len(glob) and glob[j] == "!":
                j += 1
            if j < len(glob) and glob[j] == "]":
                j += 1
            while j < len(glob) and glob[j] != "]":
                j += 1
            if j < len(glob):
                tokens.append(glob[i : j + 1])
                i = j + 1
                continue
        tokens.append(glob[i])
        i += 1
    return tokens


def _is_literal(token: str) -> bool:
    return len(token) == 1 and token not in _WILDCARDS


@dataclass(frozen=True)
class Rule:
    """One `[tools]` key: a server glob (`None`: any server) and a tool glob."""

    server: str | None
    tool: str

    @classmethod
    def parse(cls, key: str) -> Rule:
        """Split `key` at its first dot; a key without a dot applies to every server."""
        server, dot, tool = key.partition(".")
        return cls(server, tool) if dot else cls(None, key)

    def matches(self, server: str, tool: str) -> bool:
        """Whether this rule covers `tool` on `server`; each part is matched on its own."""
        return (self.server is None or fnmatchcase(server, self.server)) and fnmatchcase(tool, self.tool)

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Exact tool name first, then a named server, then more literal characters."""
        server = _tokens(self.server or "*")
        tool = _tokens(self.tool)
        return (
            int(all(map(_is_literal, tool))),
            int(all(map(_is_literal, server))),
            sum(map(_is_literal, server)) + sum(map(_is_literal, tool)),
        )


def resolve(
    tool: str,
    server: str,
    rules: dict[str, Policy],
    *,
    trusted: bool,
    read_only_hint: bool | None,
) -> Policy:
    """The policy for `tool` on `server` under an agent's `[tools]` rules.

    The most specific matching rule wins, and among equally specific ones the strictest, so the
    answer does not depend on the order of the rules. With no match, only a read-only tool of a
    trusted server runs without approval: annotations of an untrusted server are hints from a
    party we do not trust, so they never open the gate.
    """
    matches: list[tuple[tuple[int, int, int], int, Policy]] = [
        (rule.specificity, STRICTNESS[decided], decided)
        for key, decided in rules.items()
        if (rule := Rule.parse(key)).matches(server, tool)
    ]
    if matches:
        _, _, strictest = max(matches, key=lambda match: match[:2])
        return strictest
    if trusted and read_only_hint is True:
        return "auto"
    return "approve"


def rule_problem(key: str, *, servers: Iterable[str], tool_name: re.Pattern[str]) -> str | None:
    """Why `key` can match none of an agent's tools, or `None` when it can match some.

    `servers` are the agent's server names; `tool_name` is the pattern every valid tool name
    matches (the MCP spec's). A rule that can never match is a typo, and a mistyped `deny`
    would silently leave the tool it meant to hide in view.
    """
    rule = Rule.parse(key)
    if rule.server == "" or rule.tool == "":
        return "empty server or tool part (write 'tool', 'server.tool' or '*.tool')"
    if rule.server is not None and not any(fnmatchcase(name, rule.server) for name in servers):
        return f"server part {rule.server!r} matches none of the agent's mcp_servers"
    if not _can_match(rule.tool, tool_name):
        return f"tool part {rule.tool!r} matches no valid MCP tool name ({tool_name.pattern})"
    return None


def _can_match(glob: str, name: re.Pattern[str]) -> bool:
    """Whether `glob` matches a string that `name` accepts, by building the shortest candidate.

    Exact for names drawn from one character set at every position, as MCP tool names are.
    """
    alphabet = [char for char in map(chr, range(32, 127)) if name.fullmatch(char)]
    witness: list[str] = []
    for token in _tokens(glob):
        if token == "*":
            # Empty, unless a name needs at least one character and nothing else gives one.
            continue
        if token == "?":
            witness.append(alphabet[0] if alphabet else "")
        elif _is_literal(token):
            witness.append(token)
        else:
            witness.append(next((char for char in alphabet if fnmatchcase(char, token)), "\0"))
    candidate = "".join(witness)
    if not candidate and "*" in glob and alphabet:
        candidate = alphabet[0]
    return bool(name.fullmatch(candidate)) and fnmatchcase(candidate, glob)


def retry_safe(
    *, trusted: bool, idempotent_hint: bool | None, read_only_hint: bool | None, server_honours_keys: bool
) -> bool:
    """Whether a failed call of this tool may be sent again without risking a second write."""
    if server_honours_keys:
        return True
    return trusted and (read_only_hint is True or idempotent_hint is True)
