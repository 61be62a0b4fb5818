"""A flood of refused signals cannot wedge the run.

About 150 refused `approve`/`reject` signals reach a waiting run: a few with half-megabyte
fields, most around 10 KB, and malformed ones (no payload, several, not an object, not JSON).
The audit keeps the first 100 refusals, each field cut short, and counts the rest in one
`refusals_omitted` entry; the queries answer; a valid decision still approves; the write runs
once; and with a small `max_history_events` the run continues as new carrying that bounded
audit, then completes, with no workflow task failed and every history replaying.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue

from mcp_servers.tickets.store import count_writes
from tests.support.approvals import CLOSE_SCRIPT, audit_of, start
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays, events_with
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, pending_of, wait_pending
from workflows.audit import MAX_REFUSALS_LISTED

HUGE = 500_000
LARGE = 10_000
WRONG_HASH = "0" * 64
# Short enough to read in a table, long enough for a reason: no listed field may be a flood.
MAX_FIELD = 300


def flood(pending: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(signal name, arguments) of every refused attempt, about 3.5 MB in all."""
    signals: list[tuple[str, list[Any]]] = [
        # Half a megabyte in each field a sender controls; the last has the right hash, so
        # only the size of its edit stops it.
        ("approve", [decision(pending, "alice", arguments_sha256=WRONG_HASH, comment="c" * HUGE)]),
        ("approve", [decision(pending, "a" * HUGE)]),
        ("reject", [decision(pending, "bob", call_id="i" * HUGE)]),
        ("approve", [decision(pending, "alice", arguments={"ticket_id": "T-1", "resolution": "x" * HUGE})]),
        # Malformed: none, several, not an object, not JSON at all.
        ("approve", []),
        ("approve", [decision(pending, "alice"), decision(pending, "bob")]),
        ("approve", [None]),
        ("reject", ["reject it"]),
        ("approve", [7]),
        ("approve", [{"call_id": 5, "approver": ["alice"]}]),
        ("approve", [RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"\xff{not json"))]),
    ]
    for index in range(140):
        padding = "p" * LARGE
        signals.append(
            [
                (
                    "approve",
                    [
                        decision(pending, "alice", arguments_sha256=WRONG_HASH, comment=padding[:1_900])
                        | {"extra": padding}
                    ],
                ),
                ("approve", [decision(pending, "mallory", comment=padding)]),
                ("reject", [decision(pending, f"bob-{index}", call_id=f"not-{index}", reason=padding[:1_900])]),
                ("approve", [decision(pending, "carol", arguments={"ticket_id": padding})]),
            ][index % 4]
        )
    return signals


async def send_all(handle: WorkflowHandle[Any, Any], signals: list[tuple[str, list[Any]]]) -> None:
    """Send every signal, a few at a time."""
    gate = asyncio.Semaphore(8)

    async def send(name: str, args: list[Any]) -> None:
        async with gate:
            await handle.signal(name, args=args)

    await asyncio.gather(*(send(name, args) for name, args in signals))


def check_bounded(audit: list[dict[str, Any]], refused: int) -> None:
    """At most 100 refusals listed, the rest counted in one entry, and every field short."""
    listed = [e for e in audit if e["event"] == "refused"]
    [omitted] = [e for e in audit if e["event"] == "refusals_omitted"]
    assert len(listed) == MAX_REFUSALS_LISTED
    assert omitted["count"] == refused - MAX_REFUSALS_LISTED
    for entry in audit:
        for key, value in entry.items():
            assert len(str(value)) <= MAX_FIELD + 1, (key, str(value)[:100])  # +1: the cut marker


async def test_flood_of_refused_signals_cannot_wedge_the_run(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT, max_history_events=40)
    async with airlock_worker(client, project):
        handle = await start(client, project, "flood")
        [pending] = await wait_pending(handle)
        signals = flood(pending)
        total = sum(len(json.dumps([a for a in args if not isinstance(a, RawValue)])) for _, args in signals)
        assert 150 <= len(signals) and total < 5_000_000, (len(signals), total)
        await send_all(handle, signals)

        async def all_counted() -> list[dict[str, Any]] | None:
            audit = await audit_of(handle)
            counted = sum(e["event"] == "refused" for e in audit) + sum(
                e["count"] for e in audit if e["event"] == "refusals_omitted"
            )
            return audit if counted == len(signals) else None

        audit = await wait_for(all_counted, timeout=30, what="every refused signal audited")
        assert audit is not None
        check_bounded(audit, len(signals))
        assert len(json.dumps(audit)) < MAX_REFUSALS_LISTED * 2 * MAX_FIELD * 3, "the audit stays small"
        assert await pending_of(handle) == [pending], "nothing the flood sent changed the call"
        assert (await handle.query("status", result_type=dict))["state"] == "awaiting_approval"
        assert count_writes(project.tickets_db) == 0

        await handle.signal("approve", decision(pending, "alice"))
        result = await asyncio.wait_for(handle.result(), 30)
        first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        latest = client.get_workflow_handle(handle.id)
        final_audit = await audit_of(latest)
    assert [(a.decided_by, a.outcome) for a in result.approvals] == [("alice", "ok")]
    assert count_writes(project.tickets_db, "close_ticket") == 1
    # The run continued as new after the decision, and its next history carried the audit.
    first_history = await first.fetch_history()
    assert len(events_with(first_history, "workflow_execution_continued_as_new_event_attributes")) == 1
    assert (await latest.describe()).run_id != first.run_id
    check_bounded(final_audit, len(signals))
    assert [e["event"] for e in final_audit if e["event"] not in ("refused", "refusals_omitted")] == [
        "requested",
        "approved",
        "outcome",
    ]
    assert final_audit[: len(audit)] == audit, "the next run carried the audit as it was"
    for run in (first, latest):
        assert_no_task_failures(await run.fetch_history())
        await assert_replays(run)
