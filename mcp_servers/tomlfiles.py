"""Reading TOML configuration into pydantic models, with errors that name file, key and value.

It lives on the MCP side because `servers.toml` needs it and `mcp_servers/` imports nothing from
`workflows/`; the workflow side re-imports it (`mcp_servers.tomlfiles`, `workflows.errors`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """An agent, server or script file is invalid; raised at worker start, naming file and key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as `"30s"`, `"15m"`, `"24h"`, `"2d"` or a bare number."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a `ConfigError` naming the file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def validate(model: type[M], data: dict[str, Any], *, path: Path, prefix: str = "") -> M:
    """Validate `data` as `model`; the error names the file, the dotted key and the bad value."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for issue in err.errors():
            parts = [*(prefix.split(".") if prefix else []), *map(str, issue["loc"])]
            key = ".".join(parts)
            if issue["type"] == "extra_forbidden":
                problems.append(f"key {key!r}: unknown key")
            else:
                value = issue.get("input")
                # pydantic prefixes a validator's own message; and one that already quotes the
                # value (`not a duration: '2 days'`) need not be followed by it again.
                message = issue["msg"].removeprefix("Value error, ")
                shown = "" if isinstance(value, dict) or repr(value) in message else f" (got {value!r})"
                problems.append(f"key {key!r}: {message}{shown}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
