"""Commands Airlock prints for people to paste: every part shell-quoted, bound to a hash.

Workflow ids and call ids may come from callers and models; quoted, `$(...)` or a quote in
them stays text. The hash binds the command to the arguments shown next to it, so a command
printed beside a forged description can only be refused, never approve something else.
"""

from __future__ import annotations

import shlex
from typing import Literal


def decision_command(
    workflow_id: str, call_id: str, arguments_sha256: str, decision: Literal["approve", "reject"]
) -> str:
    """The `airlock` command that approves or rejects one call, for a person to complete."""
    parts = ["airlock", decision, workflow_id, call_id, "--sha256", arguments_sha256, "--as", "<you>"]
    if decision == "reject":
        parts += ["--reason", "<why>"]
    return shlex.join(parts)


def answer_command(workflow_id: str, call_id: str, question_sha256: str) -> str:
    """The `airlock answer` command for one input request, for a person to complete with the content."""
    return shlex.join(
        ["airlock", "answer", workflow_id, call_id, "<json>", "--sha256", question_sha256, "--as", "<you>"]
    )
