"""What a run may still spend: turns, tool calls and tokens, counted by its models and tools."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.payloads import Usage


class BudgetStop(Exception):
    """Raised inside the runner when a budget is used up; the workflow reports it."""


@dataclass
class Ledger:
    """Counters of one run, shared by its models and tools."""

    turns: int = 0
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    exceeded: str | None = None
    # Local activities started in this run (not carried over by continue-as-new).
    local_steps: int = 0
