"""console/render.py: what `airlock` shows, made from replies alone (no server, no process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from console import render
from console.errors import CliError
from workflows.payloads import InFlightCall, PendingApprovalView

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SHA = "a" * 64


def pending(**overrides: object) -> dict[str, object]:
    """A `pending_approvals` entry as a worker sends it, with the commands `airlock` adds."""
    call: dict[str, object] = {
        "call_id": "call-1",
        "agent": "support",
        "server": "tickets",
        "tool": "close_ticket",
        "arguments": {"ticket_id": "T-1"},
        "arguments_sha256": SHA,
        "requested_at": (NOW - timedelta(minutes=3, seconds=5)).isoformat(),
        "deadline": (NOW + timedelta(hours=1)).isoformat(),
        "approvals_needed": 1,
        "requester": "carol",
        "workflow_id": "wf-1",
        "approve_command": "airlock approve wf-1 call-1",
        "reject_command": "airlock reject wf-1 call-1",
    }
    call.update(overrides)
    return call


def test_a_table_aligns_its_columns_and_a_newline_in_a_cell_cannot_forge_a_row() -> None:
    text = render.table(["A", "LONGER"], [["x", "1"], ["evil\nwf-2  call-9", "2"]])
    lines = text.splitlines()
    assert lines[0] == "A".ljust(len("evil\\nwf-2  call-9")) + "  LONGER"
    assert len(lines) == 3
    assert lines[2].startswith("evil\\nwf-2  call-9")


def test_pending_lists_each_call_and_reads_a_newer_workers_unknown_fields() -> None:
    text = render.pending_table([pending(added_by_a_newer_worker={"x": 1})], NOW)
    header, row = text.splitlines()
    assert header.split() == ["WORKFLOW", "CALL", "AGENT", "TOOL", "ARGUMENTS", "WAITING", "DEADLINE", "NEEDS"]
    assert row.split()[:4] == ["wf-1", "call-1", "support", "tickets.close_ticket"]
    assert row.endswith('{"ticket_id": "T-1"}  3m5s     in 1h0m   1')
    assert render.pending_table([], NOW) == render.NOTHING_WAITING


def test_a_long_argument_list_is_cut_in_the_table() -> None:
    row = render.pending_table([pending(arguments={"text": "y" * 200})], NOW).splitlines()[1]
    assert "…" in row
    assert "y" * 60 not in row


def test_a_run_shows_its_state_progress_pending_call_and_audit() -> None:
    status = {
        "state": "awaiting_approval",
        "agent": "support",
        "turn": 2,
        "tool_calls": 1,
        "pending": 1,
        "requester": "carol",
        "in_flight": [{"call_id": "call-0", "server": "docs", "tool": "index", "since": NOW.isoformat()}],
    }
    audit = [{"at": NOW.isoformat(), "event": "requested", "call_id": "call-1", "arguments_sha256": SHA}]
    progress = {"call-0": {"progress": 3, "total": 10, "message": "pages"}}
    text = render.run_text("wf-1", status, None, progress, [pending()], audit, NOW)
    blocks = text.split("\n\n")
    assert blocks[0].splitlines()[1] == "state       awaiting_approval"
    assert "requester   carol (claimed)" in blocks[0]
    assert blocks[1] == "in flight\n  docs.index (call-0): 3/10 pages"
    assert "arguments_sha256  " + SHA in blocks[2]
    assert blocks[2].endswith('arguments:\n  {\n    "ticket_id": "T-1"\n  }')
    assert blocks[3].startswith("audit\nAT")
    assert "aaaaaaaaaaaa" in blocks[3]
    assert render.run_text("wf-1", status, "boom", {}, [], [], NOW).endswith("audit\n(empty)")


def test_a_pipeline_shows_its_steps_and_the_calls_waiting_in_its_children() -> None:
    status = {
        "pipeline": "triage",
        "state": "running",
        "steps": [{"name": "read", "agent": "support", "status": "running", "workflow_id": "wf-1/read"}],
        "current": None,
        "pending": [
            {
                "step": "read",
                "workflow_id": "wf-1/read",
                **{k: v for k, v in pending().items() if k in ("call_id", "agent", "server", "tool", "arguments")},
                "arguments_sha256": SHA,
                "approve_command": "airlock approve wf-1/read call-1",
            }
        ],
    }
    text = render.pipeline_text("wf-1", status)
    assert "current   -" in text
    assert "read  support  running  wf-1/read" in text
    assert text.endswith("WORKFLOW   CALL    TOOL\nwf-1/read  call-1  tickets.close_ticket")


def test_the_decision_preview_shows_what_is_signed_and_the_edit() -> None:
    call = PendingApprovalView.model_validate(pending(approved_by=["bob"]))
    text = render.decision_preview("wf-1", call, {"ticket_id": "T-2"}, "b" * 64)
    assert "approvals         1 more needed (approved by bob)" in text
    assert f"edited to (sha256 {'b' * 64}):" in text
    assert text.endswith('"ticket_id": "T-2"\n  }')


def test_a_recorded_decision_shows_the_fields_it_has_in_order() -> None:
    record = {"decision": "approved", "call_id": "call-1", "approved_by": ["alice", "bob"], "reason": None}
    text = render.record_text("wf-1", record, ("call_id", "decision", "approved_by", "reason", "outcome"))
    assert text.splitlines() == [
        "workflow     wf-1",
        "call_id      call-1",
        "decision     approved",
        "approved_by  alice, bob",
        "reason       -",
    ]


def test_json_output_is_exact_json_with_hidden_characters_escaped() -> None:
    text = render.json_text({"reason": "ok\u202eevil", "at": NOW})
    assert "\u202e" not in text
    assert json.loads(text) == {"reason": "ok\u202eevil", "at": str(NOW)}


def test_a_reply_whose_known_field_is_wrong_is_a_cli_error() -> None:
    with pytest.raises(CliError, match=r"unexpected \w+ from the run"):
        render.pending_table([pending(requested_at="not a time")], NOW)


def test_a_call_in_flight_says_its_progress_or_that_it_runs() -> None:
    call = InFlightCall(call_id="c", server="s", tool="t\x1b[2J", since=NOW)
    assert render.describe_call(call, None) == "s.t\\x1b[2J (c): running"
    assert render.describe_call(call, {"progress": 2.5}) == "s.t\\x1b[2J (c): 2.5"


def test_a_call_whose_arguments_hide_characters_says_so_and_shows_them() -> None:
    # A model's arguments with a right-to-left override and tag characters (invisible ASCII).
    hidden = "T-1\u202e" + "".join(chr(0xE0000 + ord(c)) for c in "rm")
    block = render.pending_block(pending(arguments={"ticket_id": hidden}), NOW)
    assert block.startswith("warning") and render.HIDDEN_WARNING in block
    assert "\\u202e" in block and "\\U000e0072" in block and "\u202e" not in block
    preview = render.decision_preview(
        "wf", PendingApprovalView.model_validate(pending(arguments={"a": hidden})), None, None
    )
    assert render.HIDDEN_WARNING in preview


def test_a_clean_call_has_no_warning() -> None:
    assert "warning" not in render.pending_block(pending(), NOW)
