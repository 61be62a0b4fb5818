"""`approvers.toml` (setting `AIRLOCK_APPROVERS_FILE`): read and checked on the worker.

The file is read at start, and again when it has changed since: a run that meets a signature by
a key it does not know asks for the current directory, so a key added for rotation works
without restarting runs or the worker.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflows.errors import ConfigError
from workflows.identity import GROUP_PREFIX, parse_public_key
from workflows.payloads import Directory
from workflows.tomlfiles import read_toml, validate

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$")


def load_directory(path: Path) -> Directory:
    """Read `path`; every mistake names the file and the key, and nothing loads."""
    directory = validate(Directory, read_toml(path), path=path)
    for table, principals in (("people", directory.people), ("services", directory.services)):
        for name, principal in principals.items():
            if not NAME.match(name):
                raise ConfigError(f"{path}: key '{table}.{name}': a name is letters, digits and _.@+- (at most 200)")
            for index, entry in enumerate(principal.keys):
                try:
                    parse_public_key(entry)
                except ValueError as err:
                    raise ConfigError(f"{path}: key '{table}.{name}.keys[{index}]': {err}") from None
    for name in directory.people.keys() & directory.services.keys():
        raise ConfigError(f"{path}: key 'services.{name}': {name!r} is also a person")
    for name, principal in directory.people.items():
        if principal.may_assert:
            raise ConfigError(f"{path}: key 'people.{name}.may_assert': only services may assert others")
    return directory


def check_approvers(entries: list[str], directory: Directory | None, *, path: Path, key: str) -> None:
    """Every `group:<name>` an agent names exists; without an approvers file there are no groups."""
    for index, entry in enumerate(entries):
        if not entry.startswith(GROUP_PREFIX):
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
