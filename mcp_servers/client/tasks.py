"""Task-augmented tools (`execution.taskSupport`): which tools this client cannot run, and why.

MCP 2025-11-25 lets a tool require task-augmented execution (`tools/call` with a `task` field,
then `tasks/get` / `tasks/result` / `tasks/cancel`). The mcp SDK 2.3.0 client defines those
types but never sends the requests (tasks left the core spec in 2026-07-28 for an extension), so
a tool whose `taskSupport` is `"required"` would fail every call. Such tools are hidden from the
model; `"optional"` tools are called the ordinary way, which the spec allows.
"""

from __future__ import annotations

from mcp_types import Tool

HIDDEN = "hidden (requires tasks)"
WHY = 'its execution.taskSupport is "required" and Airlock does not run task-augmented calls'


def requires_tasks(tool: Tool) -> bool:
    """Whether `tool` can only be called as a task (`execution.taskSupport == "required"`)."""
    return tool.execution is not None and tool.execution.task_support == "required"
