"""A run's live events: what it is doing, published on its Workflow Stream for subscribers to follow.

Built on `temporalio.contrib.workflow_streams`. Publishing is a change of workflow state only
(the event is appended to the stream's log in memory): it adds no command to the history, so runs
recorded before events existed replay as they ran. Subscribers long-poll an update the stream
registers (`__temporal_workflow_stream_poll`); clients in other languages read the `events_after`
query (registered by `AgentWorkflow`) with the offset they have reached.

Retention is bounded: the stream keeps the newest `MAX_KEPT_EVENTS`, and a run that continues as
new carries the newest of them (at most `MAX_CARRIED_EVENT_BYTES` of JSON) so offsets go on where
they were. Events hold no secrets: no arguments (their hash), no tokens, and only the start of a
tool's result, which the worker scrubbed before it reached the run.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState

from workflows.decoding import cut
from workflows.payloads import (
    AuditEntry,
    RunEvent,
    RunEventKind,
    RunEventLog,
    RunEventsPage,
    RunStateName,
)

# The stream's one topic: every event of the run, in order.
TOPIC = "events"
# Events kept for subscribers; older ones are dropped (a reader that far behind starts at the first kept).
MAX_KEPT_EVENTS = 1_000
# What a continued run carries of them, at most, in JSON bytes (the checkpoint has a budget).
MAX_CARRIED_EVENT_BYTES = 128 * 1024
# A text in an event (the model's words, the start of a result, a failure), at most.
MAX_EVENT_TEXT = 2_000
# Events one `events_after` answer holds, at most (a reader asks again from `next_seq`).
MAX_PAGE_EVENTS = 200

# Audit entries become events; "refused" and "refusals_omitted" are not (a flood of refused
# messages must not flood subscribers), nor "outcome" (`tool_finished` says it).
_FROM_AUDIT: dict[str, RunEventKind] = {
    "requested": "approval_requested",
    "approved": "approval_decided",
    "rejected": "approval_decided",
    "escalated": "approval_escalated",
    "timed_out": "approval_timed_out",
    "input_requested": "input_requested",
    "answered": "input_answered",
}


def carried_log(raw: Any) -> RunEventLog | None:
    """The event log a continued run's input carries, if it is one; None for anything else.

    Read in the workflow's `__init__`, before `run` checks the input: a malformed input yields
    None here and is refused by `run` as before.
    """
    if workflow.info().continued_run_id is None or not isinstance(raw, dict):
        return None
    checkpoint = raw.get("checkpoint")
    events = checkpoint.get("events") if isinstance(checkpoint, dict) else None
    if events is None:
        return None
    try:
        return RunEventLog.model_validate(events)
    except ValueError:
        return None


class RunEvents:
    """The run's event stream: publish what happens, keep the newest, carry them on."""

    def __init__(self, carried: RunEventLog | None = None) -> None:
        """Register the stream's handlers; must be called from the workflow's `__init__` (the library checks).

        The stream starts empty at the carried base offset, and the carried events are published
        again in order, so each keeps its offset.
        """
        base = carried.base if carried is not None else 0
        self.stream = WorkflowStream(prior_state=WorkflowStreamState(base_offset=base) if base else None)
        self._topic = self.stream.topic(TOPIC, type=RunEvent)
        self._kept: list[RunEvent] = []
        self._next = base
        # Calls already announced: the SDK asks about a call again when a run resumes, also in the
        # next run after continue-as-new (whose carried events say which were).
        self._announced: set[str] = {
            event.call_id
            for event in (carried.events if carried is not None else [])
            if event.kind == "tool_requested" and event.call_id
        }
        for event in carried.events if carried is not None else []:
            self._append(event.model_copy(update={"seq": self._next}))

    def publish(self, kind: RunEventKind, **fields: Any) -> RunEvent:
        """Publish one event now; text fields are cut to `MAX_EVENT_TEXT`."""
        for name in ("text", "reason"):
            if isinstance(fields.get(name), str):
                fields[name] = cut(fields[name], MAX_EVENT_TEXT)
        return self._append(RunEvent(seq=self._next, at=workflow.now(), kind=kind, **fields))

    def _append(self, event: RunEvent) -> RunEvent:
        self._topic.publish(event)
        self._kept.append(event)
        self._next += 1
        if len(self._kept) > MAX_KEPT_EVENTS:
            drop = len(self._kept) - MAX_KEPT_EVENTS
            self._kept = self._kept[drop:]
            self.stream.truncate(self._kept[0].seq)
        return event

    def first_time(self, call_id: str) -> bool:
        """Whether `call_id` is announced for the first time in this run (and note that it now is)."""
        if call_id in self._announced:
            return False
        self._announced.add(call_id)
        return True

    def state(self, state: RunStateName, *, agent: str | None = None) -> None:
        """The run's state changed."""
        self.publish("state", state=state, agent=agent or None)

    def audited(self, entry: AuditEntry) -> None:
        """An approval or input request was audited: requested, decided, escalated, timed out, answered."""
        kind = _FROM_AUDIT.get(entry.event)
        if kind is None:
            return
        if kind == "approval_timed_out" and entry.question_sha256 is not None:
            kind = "input_timed_out"
        self.publish(
            kind,
            call_id=entry.call_id,
            agent=entry.agent,
            server=entry.server,
            tool=entry.tool,
            arguments_sha256=entry.arguments_sha256,
            decision=entry.event if entry.event in ("approved", "rejected") else None,
            actor=entry.actor,
            identity=entry.identity,
            reason=entry.reason,
            action=entry.action,
            rule=entry.rule,
        )

    def page(self, after: int) -> RunEventsPage:
        """The kept events from offset `after` on (at most `MAX_PAGE_EVENTS`), for the `events_after` query."""
        first = self._kept[0].seq if self._kept else self._next
        start = max(after, first)
        events = self._kept[start - first : start - first + MAX_PAGE_EVENTS]
        return RunEventsPage(
            events=list(events),
            next_seq=events[-1].seq + 1 if events else start,
            first_kept=first,
            truncated=after < first,
        )

    def carry(self) -> RunEventLog:
        """The newest kept events that fit `MAX_CARRIED_EVENT_BYTES`, for continue-as-new."""
        size = 0
        start = len(self._kept)
        while start > 0:
            size += len(self._kept[start - 1].model_dump_json())
            if size > MAX_CARRIED_EVENT_BYTES:
                break
            start -= 1
        carried = self._kept[start:]
        return RunEventLog(base=carried[0].seq if carried else self._next, events=carried)

    def release_subscribers(self) -> None:
        """Let waiting subscribers go with what they have: the run closes or continues as new."""
        self.stream.detach_pollers()
