"""What a run may still spend: turns, tool calls and tokens, counted by its models and tools."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.payloads import Usage
from workflows.task_room import TaskRoom


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
    # What the current workflow task's local results may still add (workflows/task_room.py).
    room: TaskRoom = field(default_factory=TaskRoom)

    # Gated calls of the current model turn put before people, and those refused that for the
    # budget (call ids; both start again with each turn).
    asked: set[str] = field(default_factory=set)
    over_budget: set[str] = field(default_factory=set)
    asked_in_turn: int = -1

    def full(self, call_id: str, limit: int) -> bool:
        """Whether a gated call not yet asked finds the budget used up by calls made plus calls asked.

        Counted when asked, not only when run, so one model turn of a thousand gated calls asks
        people for at most what the run may still run.
        """
        if self.asked_in_turn != self.turns:
            self.asked_in_turn, self.asked, self.over_budget = self.turns, set(), set()
        return call_id not in self.asked and self.tool_calls + len(self.asked) >= limit
