"""Every run streams what it is doing: subscribers see every event, in order, and resume from their offset.

Real Temporal dev server, real MCP servers (the bundled tickets server over stdio, the leaky test
server), the scripted model; the reader is `console/events.py` on `temporalio.contrib.workflow_streams`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from console.events import events_after, subscribe
from runtime.redaction import REDACTED
from runtime.settings import PROJECT_ROOT
from tests.support.airlock_cli import address_of, airlock
from tests.support.approvals import CLOSE_SCRIPT, start
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult, RunEventView

RUN_DEADLINE_S = 60.0
# What a support run that closes T-1 after an approval does, in order.
CLOSE_KINDS = [
    ("state", "running"),
    ("model_turn", None),
    ("tool_requested", None),
    ("tool_policy", None),
    ("approval_requested", None),
    ("state", "awaiting_approval"),
    ("approval_decided", None),
    ("state", "running"),
    ("tool_started", None),
    ("tool_finished", None),
    ("model_turn", None),
    ("state", "completed"),
    ("completed", "completed"),
]


def kinds(events: list[RunEventView]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.state if e.kind in ("state", "completed", "failed") else None) for e in events]


class Reader:
    """A subscriber running in the background, collecting events until the run closes."""

    def __init__(self, client: Client, run_id: str, after: int = 0) -> None:
        self.events: list[RunEventView] = []
        self.done = False
        self._task = asyncio.create_task(self._read(client, run_id, after))

    async def _read(self, client: Client, run_id: str, after: int) -> None:
        async for event in subscribe(client, run_id, after=after):
            self.events.append(event)
        self.done = True

    async def until(self, kind: str) -> RunEventView:
        return await wait_for(
            lambda: _found(self.events, kind), timeout=RUN_DEADLINE_S, what=f"a {kind!r} event, seen by the subscriber"
        )

    async def finished(self) -> list[RunEventView]:
        await asyncio.wait_for(self._task, RUN_DEADLINE_S)
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _found(events: list[RunEventView], kind: str) -> RunEventView | None:
    return next((e for e in events if e.kind == kind), None)


@contextlib.asynccontextmanager
async def reading(client: Client, run_id: str, after: int = 0) -> AsyncIterator[Reader]:
    reader = Reader(client, run_id, after)
    try:
        yield reader
    finally:
        await reader.stop()


async def all_kept(client: Client, run_id: str) -> list[RunEventView]:
    """Every kept event, page by page, through the `events_after` query."""
    events: list[RunEventView] = []
    after = 0
    while True:
        page = await events_after(client, run_id, after)
        if not page.events:
            return events
        events.extend(page.events)
        after = page.next_seq


def assert_in_order(events: list[RunEventView], first: int = 0) -> None:
    assert [e.seq for e in events] == list(range(first, first + len(events))), [e.seq for e in events]


async def test_a_subscriber_from_before_the_start_sees_every_event_in_order(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    # Started with no worker yet: the subscriber is waiting before the run has done anything.
    handle = await start(client, project, "events")
    async with reading(client, handle.id) as reader:
        async with airlock_worker(client, project):
            [pending] = await wait_pending(handle)
            requested = await reader.until("approval_requested")
            assert (requested.tool, requested.call_id) == ("close_ticket", pending["call_id"])
            assert requested.arguments_sha256 == pending["arguments_sha256"]
            await handle.signal("approve", decision(pending, "alice"))
            result = await handle.result()
            # The reader drains the closed run's last events through the query, which a worker answers.
            seen = await reader.finished()
            kept = await all_kept(client, handle.id)
    assert result.output == "Done."
    assert_in_order(seen)
    assert kinds(seen) == CLOSE_KINDS
    assert [e.model_dump() for e in kept] == [e.model_dump() for e in seen]
    by_kind = {e.kind: e for e in seen}
    assert by_kind["tool_policy"].policy == "approve"
    decided = by_kind["approval_decided"]
    assert (decided.decision, decided.actor, decided.call_id) == ("approved", "alice", pending["call_id"])
    assert by_kind["tool_finished"].outcome == "ok"
    assert by_kind["completed"].text == "Done."
    assert [e.text for e in seen if e.kind == "model_turn"] == ["", "Done."]
    await assert_replays(handle)
    assert_no_task_failures(await handle.fetch_history())


async def test_a_subscriber_that_reconnects_from_its_offset_misses_nothing(client: Client, tmp_path: Path) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "events-reconnect")
        async with reading(client, handle.id) as first:
            await first.until("approval_requested")
            await first.stop()  # the connection drops mid-run
        before = list(first.events)
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))
        await handle.result()
        async with reading(client, handle.id, after=before[-1].seq + 1) as second:
            after = await second.finished()
        kept = await all_kept(client, handle.id)
    assert_in_order(before + after)
    assert kinds(before + after) == CLOSE_KINDS
    assert [e.seq for e in kept] == [e.seq for e in before + after]


async def test_continue_as_new_keeps_the_sequence(client: Client, tmp_path: Path) -> None:
    script = {
        "support": [
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-2"}}},
            {"tool_call": {"name": "close_ticket", "arguments": {"ticket_id": "T-3"}}},
            {"message": "Closed T-2 and T-3."},
        ]
    }
    # Any history is "long": the run continues as new after every approval round.
    project = make_project(tmp_path, script=script, max_history_events=1)
    async with airlock_worker(client, project):
        handle = await start(client, project, "events-can")
        first_run = (await handle.describe()).run_id
        async with reading(client, handle.id) as reader:
            [close] = await wait_pending(handle)
            await handle.signal("approve", decision(close, "alice"))

            async def second_pending() -> list[dict[str, Any]] | None:
                pending = await handle.query("pending_approvals", result_type=list)
                return pending if pending and pending[0]["arguments"] == {"ticket_id": "T-3"} else None

            [close_again] = await wait_for(second_pending, what="the second approval, in the continued run")
            assert (await handle.describe()).run_id != first_run, "the run should have continued as new"
            await handle.signal("approve", decision(close_again, "alice"))
            await handle.result()
            seen = await reader.finished()
        kept = await all_kept(client, handle.id)
    assert_in_order(seen)
    assert [e.kind for e in seen].count("approval_decided") == 2
    # Each call is announced once, though the continued run's runner asks about it again.
    requested = [e.call_id for e in seen if e.kind == "tool_requested"]
    assert len(requested) == len(set(requested)) == 2
    assert seen[-1].kind == "completed"
    # The continued run carried the first run's events: the same offsets, the same events.
    assert [e.model_dump() for e in kept] == [e.model_dump() for e in seen]
    await assert_replays(client.get_workflow_handle(handle.id, run_id=first_run))


LEAKY_AGENT = """
name = "host"
instructions = "You find out who you are."
mcp_servers = ["leaky"]

[tools]
"*" = "auto"
"""
LEAKY_SERVERS = """
[servers.leaky]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.leaky_mcp"]
env = ["GH_TOKEN"]
trust = "trusted"
"""
LEAKED = "ghp_events5Xq9ZrT2wLm8Kd3Vb7"


async def test_no_event_holds_a_secret(client: Client, tmp_path: Path) -> None:
    script = {"host": [{"tool_call": {"name": "whoami", "arguments": {}}}, {"message": "Done."}]}
    project = make_project(tmp_path, agents={"host": LEAKY_AGENT}, script=script, servers=LEAKY_SERVERS)
    project.environ["GH_TOKEN"] = LEAKED
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="host", input="Who are you?", requester="carol"),
            id=workflow_id("events-leaky"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        async with reading(client, handle.id) as reader:
            await handle.result()
            seen = await reader.finished()
    finished = next(e for e in seen if e.kind == "tool_finished")
    assert finished.tool == "whoami" and finished.outcome == "ok"
    assert finished.text == f"my secret is {REDACTED}"
    assert LEAKED not in json.dumps([e.model_dump(mode="json") for e in seen])


async def test_show_follow_prints_the_run_s_events_from_an_offset_until_it_ends(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "events-show")
        [pending] = await wait_pending(handle)
        page = await events_after(client, handle.id, 0)
        resume = page.events[2].seq  # as a reader that had seen the first two events would resume
        showing = asyncio.create_task(
            airlock(
                "--address",
                address_of(temporal_env),
                "-o",
                "json",
                "show",
                handle.id,
                "--follow",
                "--after",
                str(resume),
                home=tmp_path,
                env={"AIRLOCK_TASK_QUEUE": project.settings.task_queue},
                timeout=90,
            )
        )
        await handle.signal("approve", decision(pending, "alice"))
        await handle.result()
        ran = await asyncio.wait_for(showing, RUN_DEADLINE_S)
        kept = await all_kept(client, handle.id)
    assert ran.code == 0, ran.describe()
    # The run as `show` prints it (indented JSON), then one event a line.
    shown, end = json.JSONDecoder().raw_decode(ran.out)
    assert shown["workflow_id"] == handle.id
    followed = [RunEventView.model_validate_json(line) for line in ran.out[end:].split("\n") if line.strip()]
    assert [e.model_dump() for e in followed] == [e.model_dump() for e in kept[resume:]]
    assert followed[-1].kind == "completed"


async def test_the_documented_python_subscriber_reads_a_run(
    client: Client,
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = (PROJECT_ROOT / "docs" / "events.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    assert 'asyncio.run(follow("support-1234"))' in block
    snippet: dict[str, Any] = {}
    exec(compile(block.replace('asyncio.run(follow("support-1234"))', ""), "docs/events.md", "exec"), snippet)
    monkeypatch.setenv("AIRLOCK_TEMPORAL_ADDRESS", address_of(temporal_env))
    project = make_project(tmp_path, script=CLOSE_SCRIPT)
    async with airlock_worker(client, project):
        handle = await start(client, project, "events-doc")
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))
        await handle.result()
        await asyncio.wait_for(snippet["follow"](handle.id), RUN_DEADLINE_S)
        kept = await all_kept(client, handle.id)
    # The snippet's lines (the worker logs to stdout too, and a result's text may span lines).
    printed = [line.split()[:2] for line in capsys.readouterr().out.splitlines() if re.match(r"\d+ [a-z_]+( |$)", line)]
    assert printed == [[str(e.seq), e.kind] for e in kept]
