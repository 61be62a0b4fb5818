"""Tool policy: which tools run freely, which wait for approval, which are never shown."""

from __future__ import annotations

from fnmatch import fnmatchcase

from workflows.payloads import Policy

WILDCARDS = set("*?[")


def _specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat globs; among globs, more literal characters win."""
    literal = sum(1 for char in pattern if char not in WILDCARDS)
    return (0 if WILDCARDS & set(pattern) else 1, literal)


def resolve(
    tool: str,
    server: str,
    rules: dict[str, Policy],
    *,
    trusted: bool,
    read_only_hint: bool | None,
) -> Policy:
    """The policy for `tool` on `server` under an agent's `[tools]` rules.

    Rules match the bare tool name or `server.tool`; the most specific match wins. With no
    match, only a read-only tool of a trusted server runs without approval: annotations of an
    untrusted server are hints from a party we do not trust, so they never open the gate.
    """
    matches = [
        pattern
        for pattern in rules
        if fnmatchcase(tool, pattern) or fnmatchcase(f"{server}.{tool}", pattern)
    ]
    if matches:
        return rules[max(matches, key=_specificity)]
    if trusted and read_only_hint is True:
        return "auto"
    return "approve"


def retry_safe(*, trusted: bool, idempotent_hint: bool | None, read_only_hint: bool | None,
               server_honours_keys: bool) -> bool:
    """Whether a failed call of this tool may be sent again without risking a second write."""
    if server_honours_keys:
        return True
    return trusted and (read_only_hint is True or idempotent_hint is True)
