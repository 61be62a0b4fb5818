"""Reading a run's live events: its Workflow Stream from an offset on, and the `events_after` query.

The run publishes (workflows/events.py); this is every reader's side: `airlock run --follow` and
`airlock show --follow`, the inbox's server-sent events, the bench. A reader remembers the `seq`
of the last event it saw and, after a disconnect, subscribes again from `seq + 1`: it misses
nothing the run still keeps (`MAX_KEPT_EVENTS`). The subscription follows continue-as-new, and
ends once the run has closed and its last events are read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError

from workflows.events import TOPIC
from workflows.payloads import RunEventsPage, RunEventView

# How long a caught-up reader waits between long polls (each poll is one update in the run's history).
POLL_COOLDOWN = timedelta(milliseconds=100)
# What `event_line` shows of an event's text, at most.
LINE_TEXT = 200
# A reader that lost its connection tries again after this long, from its next offset.
RETRY_S = 1.0
# A subscription that ends with one of these lost its connection: it may go on from its offset.
DROPPED = (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError)
# One that ends with one of these cannot go on: the run refused the read (a worker of a release
# before run events has no stream), or no worker could answer for the closed run.
REFUSED = (WorkflowQueryFailedError, WorkflowUpdateFailedError)


async def subscribe(
    client: Client, workflow_id: str, *, after: int = 0, poll_cooldown: timedelta = POLL_COOLDOWN
) -> AsyncIterator[RunEventView]:
    """The run's events from offset `after` on, as they happen, until the run has closed.

    `client` must use Airlock's data converter (runtime/converter.py), which decodes the events.
    """
    stream = WorkflowStreamClient.create(client, workflow_id)
    async for item in stream.subscribe(TOPIC, after, result_type=RunEventView, poll_cooldown=poll_cooldown):
        yield item.data


async def events_after(client: Client, workflow_id: str, after: int = 0) -> RunEventsPage:
    """One page of the run's kept events from offset `after` on (a query: immediate, also for a closed run)."""
    handle = client.get_workflow_handle(workflow_id)
    page: RunEventsPage = await handle.query("events_after", after, result_type=RunEventsPage)
    return page


async def current_offset(client: Client, workflow_id: str) -> int:
    """The offset the run's next event gets (where a reader that wants only new events starts)."""
    return await WorkflowStreamClient.create(client, workflow_id).get_offset()


class Feed:
    """A run's events read in the background; after a disconnect it subscribes again from the next offset."""

    def __init__(self, client: Client, workflow_id: str, *, after: int = 0) -> None:
        self.next_seq = after
        self._client = client
        self._workflow_id = workflow_id
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                async for event in subscribe(self._client, self._workflow_id, after=self.next_seq):
                    self.next_seq = event.seq + 1
                    self._changed.set()
                return
            except DROPPED:
                # A dropped connection, a restarting frontend: go on from where this reader was.
                await asyncio.sleep(RETRY_S)
            except REFUSED:
                return

    async def changed(self) -> None:
        """Return once an event arrived since the last call."""
        await self._changed.wait()
        self._changed.clear()

    async def close(self) -> None:
        """Stop reading."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def event_line(event: RunEventView) -> str:
    """One event as a line for people: its offset, time, kind, call and what it says (text cut)."""
    parts = [f"#{event.seq}", event.at.strftime("%H:%M:%S"), event.kind]
    if event.tool:
        parts.append(f"{event.server}.{event.tool}")
    if event.kind == "state" and event.state:
        parts.append(event.state)
    for value in (event.policy, event.outcome, event.action):
        if value:
            parts.append(value)
    if event.decision:
        parts.append(event.decision + (f" by {event.actor}" if event.actor else ""))
    if event.error:
        parts.append(event.error)
    if event.text:
        text = " ".join(event.text.split())
        parts.append(text if len(text) <= LINE_TEXT else text[: LINE_TEXT - 1] + "…")
    return "  ".join(parts)
