"""`approvers.toml` (setting `AIRLOCK_APPROVERS_FILE`): read and checked on the worker.

The file is read at start, and again when it has changed since: a run that meets a signature by
a key it does not know asks for the current directory, so a key added for rotation works
without restarting runs or the worker. A person's optional `slack` member id is checked here and
kept out of the directory runs see; only the inbox host's Slack bridge reads it (`slack_users`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mcp_servers.tomlfiles import ConfigError, read_toml, validate
from workflows.identity import (
    GROUP_PREFIX,
    NAME,
    NAME_RULE,
    canonical_name,
    parse_public_key,
    valid_name,
    valid_pattern,
)
from workflows.payloads import Directory

__all__ = ["NAME", "SLACK_USER", "ApproversFile", "check_approvers", "load_directory", "slack_users"]

# A Slack member id (`[people.NAME] slack = "U0123ABCD"`): U, or W on Enterprise Grid, then
# upper-case letters and digits. Only the inbox host's Slack bridge reads it (console/slack).
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,31}\Z")


def load_directory(path: Path) -> Directory:
    """Read `path`; every mistake names the file, the key and the value, and nothing loads."""
    data = read_toml(path)
    _take_slack_ids(data, path)
    directory = validate(Directory, data, path=path)
    # Names are compared in canonical form, so two spellings of one name are one principal.
    seen: dict[str, str] = {}
    for table, principals in (("people", directory.people), ("services", directory.services)):
        for name, principal in principals.items():
            if not valid_name(name):
                raise ConfigError(f"{path}: key '{table}': {name!r} is not a valid name ({NAME_RULE})")
            where = f"{table}.{name}"
            other = seen.setdefault(canonical_name(name), where)
            if other != where:
                raise ConfigError(f"{path}: key '{where}': {name!r} is the same name as '{other}'")
            for index, entry in enumerate(principal.keys):
                try:
                    parse_public_key(entry)
                except ValueError as err:
                    raise ConfigError(f"{path}: key '{where}.keys[{index}]': {err}") from None
            for index, pattern in enumerate(principal.may_assert):
                if not valid_pattern(pattern):
                    raise ConfigError(
                        f"{path}: key '{where}.may_assert[{index}]': {pattern!r} is not a name or a pattern "
                        f"({NAME_RULE}; `*` stands for any run of characters but @)"
                    )
    for group, members in directory.groups.items():
        if not valid_name(group):
            raise ConfigError(f"{path}: key 'groups': {group!r} is not a valid group name ({NAME_RULE})")
        for index, member in enumerate(members):
            if not valid_name(member):
                raise ConfigError(
                    f"{path}: key 'groups.{group}[{index}]': {member!r} is not a valid name ({NAME_RULE})"
                )
    for name, principal in directory.people.items():
        if principal.may_assert:
            raise ConfigError(f"{path}: key 'people.{name}.may_assert': only services may assert others")
    return directory


def slack_users(path: Path) -> dict[str, str]:
    """Slack member id -> person, from the `slack` fields of `[people.*]` (the file checked whole first)."""
    load_directory(path)
    return {user: person for person, user in _take_slack_ids(read_toml(path), path).items()}


def _take_slack_ids(data: dict[str, Any], path: Path) -> dict[str, str]:
    """Remove and check each person's `slack` id (the directory a run sees has none); person -> id."""
    found: dict[str, str] = {}
    people = data.get("people")
    if not isinstance(people, dict):
        return found
    owners: dict[str, str] = {}
    for name, entry in people.items():
        if not isinstance(entry, dict) or "slack" not in entry:
            continue
        user = entry.pop("slack")
        if not isinstance(user, str) or SLACK_USER.match(user) is None:
            raise ConfigError(
                f"{path}: key 'people.{name}.slack': {user!r} is not a Slack member id (U or W, then A-Z and 0-9)"
            )
        other = owners.setdefault(user, name)
        if other != name:
            raise ConfigError(f"{path}: key 'people.{name}.slack': {user} is already people.{other}'s Slack id")
        found[name] = user
    return found


def check_approvers(entries: list[str], directory: Directory | None, *, path: Path, key: str) -> None:
    """Every entry is a valid name or a `group:<name>` that exists (no groups without an approvers file)."""
    for index, entry in enumerate(entries):
        if not entry.startswith(GROUP_PREFIX):
            if not valid_name(entry):
                raise ConfigError(f"{path}: key '{key}[{index}]': {entry!r} is not a valid name ({NAME_RULE})")
            continue
        group = entry[len(GROUP_PREFIX) :]
        if directory is None:
            raise ConfigError(
                f"{path}: key '{key}[{index}]': {entry!r} needs an approvers file (AIRLOCK_APPROVERS_FILE)"
            )
        if group not in directory.groups:
            known = ", ".join(sorted(directory.groups)) or "none"
            raise ConfigError(f"{path}: key '{key}[{index}]': unknown group {group!r} (known: {known})")


class ApproversFile:
    """The approvers file, re-read only when it changed on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._directory = load_directory(path)

    def _stat(self) -> tuple[int, int]:
        info = self.path.stat()
        return info.st_mtime_ns, info.st_size

    def current(self) -> Directory:
        """The directory as the file says now; a broken edit keeps the last good one."""
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                self._directory, self._stamp = load_directory(self.path), stamp
        except (OSError, ConfigError):
            # A half-written or broken file must not lock every approver out; start-up will say so.
            pass
        return self._directory
