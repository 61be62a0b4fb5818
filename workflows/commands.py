"""Commands Airlock prints for people to paste: every part shell-quoted, bound to a hash.

Workflow ids and call ids may come from callers and models; quoted, `$(...)` or a quote in
them stays text. The hash binds the command to the arguments shown next to it, so a command
printed beside a forged description can only be refused, never approve something else.
"""

from __future__ import annotations

import shlex
from typing import Literal, NamedTuple


class Signer(NamedTuple):
    """Who a printed command signs as: `--as` and, when known, the `--key` file that person uses."""

    approver: str
    key: str | None = None

    def arguments(self) -> list[str]:
        """`--as NAME` and `--key PATH` (when a key file is known)."""
        return ["--as", self.approver, *(["--key", self.key] if self.key else [])]


# Anywhere but `--dev` the command is for whoever reads it: they put their own name (and key).
YOU = Signer("<you>")


def decision_command(
    workflow_id: str,
    call_id: str,
    arguments_sha256: str,
    decision: Literal["approve", "reject"],
    signer: Signer = YOU,
) -> str:
    """The `airlock` command that approves or rejects one call, for `signer` (or a person) to complete."""
    parts = ["airlock", decision, workflow_id, call_id, "--sha256", arguments_sha256, *signer.arguments()]
    if decision == "reject":
        parts += ["--reason", "<why>"]
    return shlex.join(parts)


def answer_command(workflow_id: str, call_id: str, question_sha256: str, signer: Signer = YOU) -> str:
    """The `airlock answer` command for one input request, for a person to complete with the content."""
    return shlex.join(
        ["airlock", "answer", workflow_id, call_id, "<json>", "--sha256", question_sha256, *signer.arguments()]
    )
