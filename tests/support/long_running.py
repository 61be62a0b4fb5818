"""A long-running MCP tool in a test: an agent using it, its servers entry and the events it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.settings import PROJECT_ROOT

AGENT = """
name = "{name}"
instructions = "You do long work."
mcp_servers = ["{server}"]
"""


def long_servers(events: Path, *, long_running: bool = True, trust: str = "trusted") -> str:
    """`servers.toml` with the long test server over stdio."""
    return f"""
[servers.long]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.long_mcp"]
cwd = "{PROJECT_ROOT}"
env = ["LONG_EVENTS"]
trust = "{trust}"
long_running = {str(long_running).lower()}
"""


def events_of(path: Path) -> list[dict[str, Any]]:
    """The long server's event lines so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
