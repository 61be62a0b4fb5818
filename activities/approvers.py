"""`approvers.toml` (setting `AIRLOCK_APPROVERS_FILE`): read and checked on the worker.

The file is read at start, and again when it has changed since: a run that meets a signature by
a key it does not know asks for the current directory, so a key added for rotation works
without restarting runs or the worker.
"""

from __future__ import annotations

from pathlib import Path

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

__all__ = ["NAME", "ApproversFile", "check_approvers", "load_directory"]


def load_directory(path: Path) -> Directory:
    """Read `path`; every mistake names the file, the key and the value, and nothing loads."""
    directory = validate(Directory, read_toml(path), path=path)
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
