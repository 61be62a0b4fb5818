"""Pinned tool definitions: each tool's digest, the lock file that records them, and what changed.

A server may change a tool at any time: its description (what the model reads), its schema,
its annotations (`readOnlyHint` decides whether a trusted tool runs without a person). A pin is
the sha256 of a tool's whole definition as reviewed; `airlock mcp pin` writes them to a lock file
(`tools.lock.toml` beside `servers.toml`, setting `AIRLOCK_TOOLS_LOCK_FILE`) meant for code
review, one entry per `server.tool` with the digest, a one-line summary and the definition
itself (so a change can be shown as a diff). With pins on for a server, a tool whose definition
differs from its pin, or that has none, is hidden (`pins = "hide"`, the default) or gated for
approval whatever its policy (`pins = "gate"`). Worker side: it reads a file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp_types import Tool

from mcp_servers.client.config import ServerConfig
from mcp_servers.tomlfiles import ConfigError, read_toml

PinMode = Literal["hide", "gate", "off"]
Status = Literal["pinned", "changed", "new"]

# What a definition is: every field a model or the gate reads (not icons, not `_meta`).
FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations", "execution")
# A diff travels in the run's plan and reaches approvers' screens: bounded.
MAX_DIFF_CHARS = 4_000
MAX_SUMMARY_CHARS = 120
LOCK_FILE_NAME = "tools.lock.toml"
HEADER = """\
# Tool definitions pinned by `airlock mcp pin`: review a change to this file like code.
# With pins on, a tool whose definition no longer has this digest, or that has no entry, is hidden
# or gated for approval (`pins` in servers.toml); `airlock mcp pin --update SERVER TOOL` accepts it.
"""


def definition(tool: Tool) -> dict[str, Any]:
    """The parts of `tool` a pin covers, in wire form (camelCase, absent fields left out)."""
    wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {key: wire[key] for key in FIELDS if key in wire}


def digest(defined: dict[str, Any]) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces, UTF-8) of a definition."""
    canonical = json.dumps(defined, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_digest(tool: Tool) -> str:
    """The digest of `tool`'s whole definition."""
    return digest(definition(tool))


def _readable(defined: dict[str, Any]) -> str:
    # ASCII only: an invisible or direction-changing character shows as its \u escape.
    return json.dumps(defined, sort_keys=True, indent=2, ensure_ascii=True)


def summary(defined: dict[str, Any]) -> str:
    """One line for a reviewer: the hints, then the description's first line (ASCII, escapes visible)."""
    hints = defined.get("annotations") or {}
    shown = [f"{key}={json.dumps(value)}" for key, value in sorted(hints.items()) if key.endswith("Hint")]
    first = str(defined.get("description") or "").strip().split("\n")[0]
    text = "; ".join([*shown, first] if first else shown)
    text = text.encode("ascii", "backslashreplace").decode()
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 3] + "..."


def diff(pinned: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """A unified diff from the pinned definition to the current one (all added for a new tool), cut."""
    before = _readable(pinned).splitlines() if pinned is not None else []
    lines = difflib.unified_diff(before, _readable(now).splitlines(), "pinned", "now", n=1, lineterm="")
    text = "\n".join(lines)
    if len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + f"\n[airlock: diff cut, {len(text) - MAX_DIFF_CHARS} characters not shown]"
    return text


@dataclass(frozen=True)
class Pin:
    """One lock-file entry: a tool's digest, its summary and the definition it was taken from."""

    sha256: str
    summary: str
    definition: dict[str, Any]

    @classmethod
    def of(cls, tool: Tool) -> Pin:
        """The pin of `tool` as it is now."""
        defined = definition(tool)
        return cls(digest(defined), summary(defined), defined)


@dataclass(frozen=True)
class Verdict:
    """A listed tool against its pin: pinned (unchanged), changed or new, with the digest now and the diff."""

    status: Status
    sha256: str
    diff: str = ""

    @property
    def note(self) -> str:
        """What an approver and a log read: "changed since pinned" or "new since pinned", and the diff."""
        if self.status == "pinned":
            return ""
        return f"{self.status} since pinned (airlock mcp tools; airlock mcp pin --update):\n{self.diff}"


def compare(pin: Pin | None, tool: Tool) -> Verdict:
    """How `tool` as listed now stands against `pin`."""
    defined = definition(tool)
    now = digest(defined)
    if pin is None:
        return Verdict("new", now, diff(None, defined))
    if pin.sha256 == now:
        return Verdict("pinned", now)
    return Verdict("changed", now, diff(pin.definition, defined))


Pins = dict[str, dict[str, Pin]]
"""Server name → tool name → pin."""


def load(path: Path) -> Pins:
    """Read a lock file (a missing one pins nothing); every mistake names the file and the key."""
    if not path.exists():
        return {}
    data = read_toml(path)
    unknown = sorted(set(data) - {"tools"})
    if unknown:
        raise ConfigError(f'{path}: key {unknown[0]!r}: unknown key (the file has only [tools."server.tool"] tables)')
    tools = data.get("tools", {})
    if not isinstance(tools, dict):
        raise ConfigError(f"{path}: key 'tools': must be a table")
    pins: Pins = {}
    for key, entry in tools.items():
        where = f"tools.{json.dumps(key)}"
        server, dot, name = key.partition(".")
        if not dot or not server or not name:
            raise ConfigError(f"{path}: key {where!r}: must be 'server.tool'")
        if not isinstance(entry, dict) or set(entry) != {"sha256", "summary", "definition"}:
            raise ConfigError(f"{path}: key {where!r}: needs exactly sha256, summary and definition")
        try:
            defined = json.loads(entry["definition"])
        except (TypeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: key {where + '.definition'!r}: not JSON ({err})") from None
        if not isinstance(defined, dict) or defined.get("name") != name:
            raise ConfigError(f"{path}: key {where + '.definition'!r}: must be the definition of tool {name!r}")
        if digest(defined) != entry["sha256"]:
            # A hand edit of one without the other: the pin would not mean what a reviewer read.
            raise ConfigError(f"{path}: key {where + '.sha256'!r}: does not match the definition beside it")
        pins.setdefault(server, {})[name] = Pin(entry["sha256"], str(entry["summary"]), defined)
    return pins


def _literal(text: str) -> str:
    # A TOML multi-line literal string takes the JSON as it is; only ''' would end it early, and
    # JSON can spell a quote inside a string as \u0027 instead.
    if "'''" in text:
        text = text.replace("'", "\\u0027")
    return f"'''\n{text}\n'''"


def render(pins: Pins) -> str:
    """The lock file's text: the header, then one table per `server.tool`, sorted."""
    parts = [HEADER]
    for server in sorted(pins):
        for name in sorted(pins[server]):
            pin = pins[server][name]
            parts.append(
                f"\n[tools.{json.dumps(f'{server}.{name}')}]\n"
                f"sha256 = {json.dumps(pin.sha256)}\n"
                f"summary = {json.dumps(pin.summary, ensure_ascii=True)}\n"
                f"definition = {_literal(_readable(pin.definition))}\n"
            )
    return "".join(parts)


def write(path: Path, pins: Pins) -> None:
    """Write the lock file whole (through a temporary file, so a reader never sees half of it)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render(pins))
    partial.replace(path)


def mode(server: str, config: ServerConfig, pins: Pins) -> PinMode:
    """Pins on a server: its `pins` setting, else "hide" once the lock file pins any of its tools."""
    if config.pins is not None:
        return config.pins
    return "hide" if pins.get(server) else "off"


class PinFile:
    """The lock file, re-read only when it changed on disk (so `pin --update` needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._pins = load(path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_mtime_ns, info.st_size

    def current(self) -> Pins:
        """The pins as the file says now; a broken edit keeps the last good ones (start-up says so)."""
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                self._pins, self._stamp = load(self.path), stamp
        except (OSError, ConfigError):
            pass
        return self._pins

    def check(self, server: str, config: ServerConfig, tool: Tool) -> tuple[PinMode, Verdict | None]:
        """The server's pin mode and, when pins are on, how `tool` stands against its pin."""
        pins = self.current()
        found = mode(server, config, pins)
        if found == "off":
            return found, None
        return found, compare(pins.get(server, {}).get(tool.name), tool)
