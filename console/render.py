"""What `airlock` shows: tables, name/value blocks and JSON text, as pure functions of the replies.

Nothing here reads, writes or connects: a command asks Temporal, passes the replies in, and writes
the text it gets back (console.terminal). Every string a model, a server or a sender chose is shown
escaped (workflows.visible), so it cannot forge rows or move the cursor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.client import WorkflowExecutionDescription

from console.errors import CliError
from console.waiting import age, until
from workflows.payloads import AuditEntryView, InFlightCall, PendingApprovalView, PipelineStatus, RunStatus, View
from workflows.visible import hides_text, visible, visible_json

V = TypeVar("V", bound=View)

ARGUMENTS_SHORT = 48
NOTHING_WAITING = "nothing is waiting for a decision"
EMPTY = "(empty)"


def json_text(data: Any) -> str:
    """`data` as indented JSON; exact JSON still: a hidden character in a string becomes its `\\u` escape."""
    return visible_json(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns, two spaces apart; no colour, so it reads the same in a pipe."""
    clean = [[_one_line(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *clean, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *clean]
    ]
    return "\n".join(lines)


def fields(pairs: list[tuple[str, str]]) -> str:
    """Name/value lines, values aligned."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name.ljust(width)}  {_one_line(value)}".rstrip() for name, value in pairs)


def known(view: type[V], raw: dict[str, Any]) -> V:
    """`raw` (a reply kept as JSON) read as `view`; CliError when a field it knows is wrong."""
    # A view ignores what a newer worker added; the JSON output passes the reply on whole.
    try:
        return view.model_validate(raw)
    except ValidationError as err:
        raise CliError(f"unexpected {view.__name__} from the run: {err.errors()[0]['msg']}") from None


def state_of(description: WorkflowExecutionDescription) -> str:
    """The run's execution status as people say it: `running`, `failed`, `timed out`."""
    status = description.status
    return status.name.lower().replace("_", " ") if status is not None else "unknown"


def describe_call(call: InFlightCall, progress: dict[str, Any] | None) -> str:
    """One readable line: the call, and its progress when the server reported any (hidden characters escaped)."""
    line = f"{call.server}.{call.tool} ({call.call_id})"
    if not progress or progress.get("progress") is None:
        return visible(line + ": running")
    done, total = progress["progress"], progress.get("total")
    amount = f"{done:g}/{total:g}" if total else f"{done:g}"
    message = str(progress.get("message") or "")
    return visible(f"{line}: {amount}" + (f" {message}" if message else ""))


# --- airlock pending, show, audit --------------------------------------------------------------


def pending_table(calls: list[dict[str, Any]], now: datetime) -> str:
    """Every waiting call, one row each (`calls` carry their `workflow_id`), or a line saying there is none."""
    rows = []
    for call in calls:
        view = known(PendingApprovalView, call)
        shown = json.dumps(view.arguments, ensure_ascii=False)
        if view.kind == "input" and view.question is not None:
            shown = f"input: {view.question.message}"
        rows.append(
            [
                call["workflow_id"],
                view.call_id,
                view.agent,
                f"{view.server}.{view.tool}",
                _short(shown, ARGUMENTS_SHORT),
                age(now - view.requested_at),
                until(view.deadline, now),
                "answer" if view.kind == "input" else str(view.approvals_needed),
            ]
        )
    headers = ["WORKFLOW", "CALL", "AGENT", "TOOL", "ARGUMENTS", "WAITING", "DEADLINE", "NEEDS"]
    return table(headers, rows) if rows else NOTHING_WAITING


def ended_text(workflow_id: str, state: str, failure: str, task_queue: str) -> str:
    """A run that ended badly, shown from its history when no worker is there to answer queries."""
    return fields(
        [
            ("workflow", workflow_id),
            ("state", state),
            ("failed", failure),
            ("details", f"no worker polls task queue {task_queue!r} to answer status and audit"),
        ]
    )


def run_text(
    workflow_id: str,
    status: dict[str, Any],
    failure: str | None,
    progress: dict[str, dict[str, Any]],
    calls: list[dict[str, Any]],
    audit: list[dict[str, Any]],
    now: datetime,
) -> str:
    """One agent run: its state, the calls in flight, each pending call in full, and its audit."""
    state = known(RunStatus, status)
    parts = [
        fields(
            [
                ("workflow", workflow_id),
                ("state", state.state),
                ("agent", state.agent),
                ("turn", str(state.turn)),
                ("tool calls", str(state.tool_calls)),
                ("pending", str(state.pending)),
                ("requester", requester(state.requester, state.requester_proof)),
                *([("failed", failure)] if failure is not None else []),
            ]
        )
    ]
    if state.in_flight:
        parts.append(
            "in flight\n" + "\n".join(f"  {describe_call(c, progress.get(c.call_id))}" for c in state.in_flight)
        )
    for call in calls:
        parts.append(pending_block(call, now))
    parts.append("audit\n" + (audit_table(audit) if audit else EMPTY))
    return "\n\n".join(parts)


def pipeline_text(workflow_id: str, status: dict[str, Any]) -> str:
    """One pipeline run: its steps, and the calls waiting in its child runs."""
    view = known(PipelineStatus, status)
    steps = [[step.name, step.agent, step.status, step.workflow_id] for step in view.steps]
    waiting = [[p.workflow_id, p.call_id, f"{p.server}.{p.tool}"] for p in view.pending]
    text = fields(
        [
            ("workflow", workflow_id),
            ("pipeline", view.pipeline),
            ("state", view.state),
            ("current", view.current or "-"),
        ]
    )
    text += "\n\n" + table(["STEP", "AGENT", "STATUS", "WORKFLOW"], steps)
    if waiting:
        # A child's own `pending_approvals` is the authority on what is decided and its hash.
        text += "\n\nwaiting in child runs (decide with `airlock show CHILD`):\n"
        text += table(["WORKFLOW", "CALL", "TOOL"], waiting)
    return text


def pending_block(call: dict[str, Any], now: datetime) -> str:
    """One pending call in full: who asked, when, its deadline, hash, commands and arguments."""
    view = known(PendingApprovalView, call)
    if view.kind == "input" and view.question is not None:
        return _input_block(call, view, now)
    head = fields(
        [
            *_hidden_warning(view.tool, view.arguments),
            ("call", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
            ("requester", requester(view.requester, view.requester_proof)),
            ("requested", f"{_at(view.requested_at)} ({age(now - view.requested_at)} ago)"),
            ("deadline", f"{_at(view.deadline)} ({until(view.deadline, now)})" if view.deadline else "-"),
            ("approvals", _approvals(view)),
            ("arguments_sha256", view.arguments_sha256),
            ("approve", call["approve_command"]),
            ("reject", call["reject_command"]),
        ]
    )
    return head + "\narguments:\n" + indented(view.arguments)


def _input_block(call: dict[str, Any], view: PendingApprovalView, now: datetime) -> str:
    question = view.question
    assert question is not None
    pairs = [
        *_hidden_warning(question.message, question.requested_schema),
        ("input request", f"{view.call_id}  {view.server}.{view.tool}  (agent {view.agent})"),
        ("requester", requester(view.requester, view.requester_proof)),
        ("message", question.message),
        ("requested", f"{_at(view.requested_at)} ({age(now - view.requested_at)} ago)"),
        ("deadline", f"{_at(view.deadline)} ({until(view.deadline, now)})" if view.deadline else "-"),
        ("question_sha256", question.question_sha256),
        ("answer", call.get("answer_command", "-")),
    ]
    if question.mode == "url":
        pairs.insert(3, ("url", question.url or "-"))
    text = fields(pairs)
    if question.requested_schema is not None:
        text += "\nrequested schema:\n" + indented(question.requested_schema)
    return text


def audit_table(audit: list[dict[str, Any]]) -> str:
    """A run's audit trail, one row per entry, oldest first."""
    rows = []
    for raw in audit:
        entry = known(AuditEntryView, raw)
        rows.append(
            [
                _at(entry.at),
                entry.event,
                entry.call_id,
                entry.actor or "-",
                entry.identity or "-",
                _short(
                    entry.reason
                    or (f"outcome {entry.outcome}" if entry.outcome else "")
                    or (f"action {entry.action}" if entry.action else "-"),
                    60,
                ),
                (entry.arguments_sha256 or "-")[:12],
            ]
        )
    return table(["AT", "EVENT", "CALL", "ACTOR", "IDENTITY", "REASON", "HASH"], rows)


def audit_text(audit: list[dict[str, Any]]) -> str:
    """`airlock audit`: the trail as a table, or `(empty)`."""
    return audit_table(audit) if audit else EMPTY


# --- airlock approve, reject, sign, answer ------------------------------------------------------


def decision_preview(
    workflow_id: str, call: PendingApprovalView, edit: dict[str, Any] | None, edited: str | None
) -> str:
    """What the person is about to sign: the call, its arguments and their hash (and an edit's)."""
    text = fields(
        [
            *_hidden_warning(call.tool, call.arguments, edit),
            ("workflow", workflow_id),
            ("call", f"{call.call_id}  {call.server}.{call.tool}  (agent {call.agent})"),
            ("approvals", _approvals(call)),
            ("arguments_sha256", call.arguments_sha256),
        ]
    )
    text += "\narguments:\n" + indented(call.arguments)
    if edit is not None and edited is not None:
        text += f"\nedited to (sha256 {edited}):\n" + indented(edit)
    return text


def answer_preview(
    workflow_id: str, call: PendingApprovalView, sha: str, action: str, content: dict[str, Any] | None
) -> str:
    """What the person is about to sign: the question, its hash, and the answer."""
    question = call.question
    pairs = [
        ("workflow", workflow_id),
        ("input request", f"{call.call_id}  {call.server}.{call.tool}  (agent {call.agent})"),
        ("message", question.message if question is not None else "-"),
        ("question_sha256", sha),
        ("answer", action),
    ]
    if question is not None and question.mode == "url":
        pairs.insert(3, ("url", question.url or "-"))
    text = fields(pairs)
    if content is not None:
        text += "\ncontent:\n" + indented(content)
    return text


def record_text(workflow_id: str, record: dict[str, Any], names: tuple[str, ...]) -> str:
    """A decision or answer the run recorded: the `names` it has, in that order."""
    rows = [(name, _text(record.get(name))) for name in names if name in record]
    return fields([("workflow", workflow_id), *rows])


# --- pieces -------------------------------------------------------------------------------------


def requester(name: str | None, proof: str) -> str:
    """Who requested a run, and how that is known: `carol (claimed)` (a client typed it)."""
    return f"{name} ({proof})" if name is not None else "-"


def indented(value: Any) -> str:
    """`value` as indented JSON lines, each line's hidden characters escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return "\n".join("  " + visible(line) for line in text.splitlines())


HIDDEN_WARNING = (
    "this call holds invisible or direction-changing characters, shown as escapes (\\u202e, \\U000e0041): "
    "read them before you decide"
)


def _hidden_warning(*values: Any) -> list[tuple[str, str]]:
    """A `warning` row when any of `values` holds a character a reader would not see (workflows/visible.py)."""
    return [("warning", HIDDEN_WARNING)] if any(hides_text(v) for v in values if v is not None) else []


def _approvals(view: PendingApprovalView) -> str:
    return f"{view.approvals_needed} more needed" + (
        f" (approved by {', '.join(view.approved_by)})" if view.approved_by else ""
    )


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _one_line(text: str) -> str:
    # A model or a sender chose these strings: a newline or escape must not forge table rows,
    # and what is there is shown (escaped), not dropped.
    return visible(text)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _at(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"
