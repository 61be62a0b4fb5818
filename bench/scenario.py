"""The benchmark scenario: a throwaway Airlock project whose agents read K tickets, then answer."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.models import ScriptStep, load_script
from runtime.settings import PROJECT_ROOT

TICKET_IDS = ("T-1", "T-2", "T-3", "T-4", "T-5")
TINY_AGENT = "tiny"
WRITER_AGENT = "writer"
APPROVER = "alice"
GATED_TOOL = "comment_on_ticket"
READER_INSTRUCTIONS = "Read the tickets you are asked about, then summarise them."

# The registry the project ships: the tickets server over stdio, trusted, honouring keys.
BUNDLED_SERVERS = PROJECT_ROOT / "mcp_servers" / "servers.toml"


def reader_agent(k: int) -> str:
    """Name of the agent that reads `k` tickets and then answers."""
    return f"reader_k{k}"


def steps_of(k: int) -> int:
    """Agent steps of a K-read run: K+1 model calls and K tool calls."""
    return 2 * k + 1


def max_turns_of(k: int) -> int:
    """A turn budget with room to spare for K reads (the SDK counts one turn per model call)."""
    return k + 5


@dataclass(frozen=True)
class Scenario:
    """Files of one benchmark project and the script both runners play."""

    root: Path
    agents_dir: Path
    servers_file: Path
    script_file: Path
    durable_db: Path
    plain_db: Path
    anchor_db: Path
    script: dict[str, list[ScriptStep]]
    ks: tuple[int, ...]


def _reader_toml(name: str, k: int) -> str:
    return textwrap.dedent(f"""
        name = "{name}"
        instructions = "{READER_INSTRUCTIONS}"
        mcp_servers = ["tickets"]
        max_turns = {max_turns_of(k)}
        max_tool_calls = {k + 5}

        [tools]
        "get_*" = "auto"
        "search_*" = "auto"
        """)


def _writer_toml() -> str:
    return textwrap.dedent(f"""
        name = "{WRITER_AGENT}"
        instructions = "Comment on the ticket you are asked about."
        mcp_servers = ["tickets"]

        [tools]
        "get_*" = "auto"
        {GATED_TOOL} = "approve"

        [approval]
        approvers = ["{APPROVER}"]
        """)


def _reader_script(k: int) -> list[dict[str, Any]]:
    reads: list[dict[str, Any]] = [
        {"tool_call": {"name": "get_ticket", "arguments": {"ticket_id": TICKET_IDS[i % len(TICKET_IDS)]}}}
        for i in range(k)
    ]
    return [*reads, {"message": f"Read {k} tickets; all are as described."}]


def _raw_script(ks: tuple[int, ...]) -> dict[str, list[dict[str, Any]]]:
    script = {reader_agent(k): _reader_script(k) for k in ks}
    script[TINY_AGENT] = _reader_script(0)
    script[WRITER_AGENT] = [
        {"tool_call": {"name": GATED_TOOL, "arguments": {"ticket_id": "T-3", "text": "benchmark comment"}}},
        {"message": "Commented on T-3."},
    ]
    return script


def build(root: Path, ks: tuple[int, ...]) -> Scenario:
    """Write agents and the model script under `root`; the servers are the bundled registry."""
    agents_dir = root / "agents"
    agents_dir.mkdir(parents=True, exist_ok=True)
    readers = {reader_agent(k): k for k in ks} | {TINY_AGENT: 0}
    for name, k in readers.items():
        (agents_dir / f"{name}.toml").write_text(_reader_toml(name, k))
    (agents_dir / f"{WRITER_AGENT}.toml").write_text(_writer_toml())
    script_file = root / "script.json"
    script_file.write_text(json.dumps(_raw_script(ks)))
    return Scenario(
        root=root,
        agents_dir=agents_dir,
        servers_file=BUNDLED_SERVERS,
        script_file=script_file,
        durable_db=root / "durable-tickets.db",
        plain_db=root / "plain-tickets.db",
        anchor_db=root / "anchor-tickets.db",
        script=load_script(script_file),
        ks=ks,
    )
