"""The inbox's live updates: server-sent events from runs' event streams, instead of polling every 2 s.

Two streams go to browsers. `/events?wf=ID` is one run's events (console/events.py), each with
its offset as the SSE id, so a browser that reconnects (`Last-Event-ID`) resumes where it was.
`/calls/events` tells the inbox page that what waits may have changed: the `Watcher` follows the
running agent runs (at most `MAX_WATCHED`; new runs are found by listing them every `RELIST_S`)
and wakes every page when one is asked for, or gets, a decision or an answer. The page then
fetches the listing fragment it used to poll for; it still polls, every 2 s, while its event
source is not open (the fallback).

The inbox reads each run once, however many pages show it: the `Hub` holds one subscription per
run and hands its events to every reader. Each subscription is an update waiting in the run, and
Temporal allows a run only a few updates in flight at once (`review` decisions among them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog
from temporalio.client import Client
from temporalio.service import RPCError

from console.errors import ConsoleError
from console.events import DROPPED, REFUSED, subscribe
from workflows.payloads import RunEventView

log = structlog.get_logger("airlock.inbox")

# Runs followed by the watcher at once; beyond this, the page learns of their changes by the listing.
MAX_WATCHED = 200
# How often the watcher lists running agent runs, to follow new ones (one visibility call per inbox).
RELIST_S = 2.0
# A comment line this often keeps a quiet stream open through proxies that close idle connections.
KEEPALIVE_S = 15.0
# Events the hub keeps of one run for its readers (the run itself keeps as many).
MAX_HELD = 1_000
# What changes the inbox listing: a call asked for, decided, escalated, timed out; a run ending.
LISTING_KINDS = frozenset(
    {
        "approval_requested",
        "approval_decided",
        "approval_escalated",
        "approval_timed_out",
        "input_requested",
        "input_answered",
        "input_escalated",
        "input_timed_out",
        "state",
        "completed",
        "failed",
    }
)
# What ends following one run's stream (the run is gone, its worker cannot answer, a reply it cannot read).
FOLLOW_ERRORS = (*DROPPED, *REFUSED, ValueError)
RUNNING_AGENTS = 'WorkflowType="AgentWorkflow" AND ExecutionStatus="Running"'


class RunNotFollowedError(ConsoleError):
    """The run's events could not be read (no such run, no worker to answer); the message says why."""


def sse(event: str, data: str, *, event_id: int | None = None) -> str:
    """One server-sent event (`data` is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


@dataclass
class _Shared:
    """One run's subscription and the events it has read, for every reader of that run."""

    events: list[RunEventView] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    readers: int = 0
    done: bool = False
    error: str | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class Hub:
    """One subscription per run for the whole inbox process, shared by its readers."""

    client: Client
    _runs: dict[str, _Shared] = field(default_factory=dict)

    async def events(self, workflow_id: str, after: int = 0) -> AsyncIterator[RunEventView | None]:
        """The run's events from offset `after` on (None: a keepalive), until the run has closed.

        Raises:
            RunNotFollowedError: the run's events could not be read.
        """
        shared = self._runs.get(workflow_id)
        if shared is None or shared.error is not None:
            shared = self._runs[workflow_id] = _Shared()
            shared.task = asyncio.create_task(self._read(workflow_id, shared))
        shared.readers += 1
        try:
            while True:
                async with shared.changed:
                    try:
                        await asyncio.wait_for(shared.changed.wait_for(_ready(shared, after)), KEEPALIVE_S)
                    except TimeoutError:
                        pass
                    new = [event for event in shared.events if event.seq >= after]
                    done, error = shared.done, shared.error
                if not new and not done:
                    yield None
                for event in new:
                    yield event
                    after = event.seq + 1
                if done and not new:
                    if error is not None:
                        raise RunNotFollowedError(error)
                    return
        finally:
            shared.readers -= 1
            if shared.readers == 0 and self._runs.get(workflow_id) is shared:
                del self._runs[workflow_id]
                if shared.task is not None:
                    shared.task.cancel()

    async def _read(self, workflow_id: str, shared: _Shared) -> None:
        try:
            async for event in subscribe(self.client, workflow_id):
                async with shared.changed:
                    shared.events.append(event)
                    del shared.events[:-MAX_HELD]
                    shared.changed.notify_all()
        except FOLLOW_ERRORS as err:
            shared.error = str(err)[:300] or type(err).__name__
        finally:
            async with shared.changed:
                shared.done = True
                shared.changed.notify_all()


def _ready(shared: _Shared, after: int) -> Callable[[], bool]:
    return lambda: shared.done or bool(shared.events and shared.events[-1].seq >= after)


async def run_stream(hub: Hub, workflow_id: str, after: int) -> AsyncIterator[str]:
    """One run's events from offset `after` on, as server-sent events, then `end` once the run has closed.

    A run that cannot be followed (no such run, no worker to answer) ends the stream with `end`
    saying why, so the browser does not reconnect to it forever.
    """
    try:
        async for item in hub.events(workflow_id, after):
            yield ": keepalive\n\n" if item is None else sse("run", item.model_dump_json(), event_id=item.seq)
    except RunNotFollowedError as err:
        yield sse("end", json.dumps({"error": str(err)}))
        return
    yield sse("end", "{}")


@dataclass
class Watcher:
    """Follows running agent runs for the inbox page (through the hub); one per inbox process."""

    hub: Hub
    version: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _followed: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _lister: asyncio.Task[None] | None = None
    _listeners: int = 0

    async def changes(self) -> AsyncIterator[int | None]:
        """The listing's version each time it may have changed (None: a keepalive), while the caller reads."""
        self._listeners += 1
        if self._lister is None or self._lister.done():
            self._lister = asyncio.create_task(self._list())
        try:
            seen = self.version
            yield seen
            while True:
                async with self._changed:
                    try:
                        await asyncio.wait_for(self._changed.wait_for(self._since(seen)), KEEPALIVE_S)
                        changed = True
                    except TimeoutError:
                        changed = False
                if not changed:
                    yield None
                    continue
                seen = self.version
                yield seen
        finally:
            self._listeners -= 1
            if self._listeners == 0:
                self.stop()

    def _since(self, seen: int) -> Callable[[], bool]:
        return lambda: self.version != seen

    def stop(self) -> None:
        """Stop following runs (no page is listening)."""
        if self._lister is not None:
            self._lister.cancel()
            self._lister = None
        for task in self._followed.values():
            task.cancel()
        self._followed.clear()

    async def _bump(self) -> None:
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def _list(self) -> None:
        while True:
            try:
                running: list[str] = []
                async for execution in self.hub.client.list_workflows(RUNNING_AGENTS, limit=MAX_WATCHED):
                    running.append(execution.id)
                for workflow_id in running:
                    if workflow_id not in self._followed:
                        self._followed[workflow_id] = asyncio.create_task(self._follow(workflow_id))
                for workflow_id in set(self._followed) - set(running):
                    self._followed.pop(workflow_id).cancel()
            except RPCError as err:
                log.warning("inbox could not list running runs", error=str(err))
            await asyncio.sleep(RELIST_S)

    async def _follow(self, workflow_id: str) -> None:
        """Wake the pages on each of the run's events that changes what waits, from the run's first event.

        From the first, not the newest: a run found by the listing may have asked for a decision
        already, and the page must hear of it (a page cannot miss a change it was told of twice).
        """
        try:
            async for event in self.hub.events(workflow_id):
                if event is not None and event.kind in LISTING_KINDS:
                    await self._bump()
        except RunNotFollowedError as err:  # a run gone, a worker of an older release: the listing finds it
            log.debug("inbox stopped following a run", workflow_id=workflow_id, error=str(err))
