"""Measurement 10: live run events — how soon a subscriber sees what a run published, and what following costs.

The run is the writer's (one gated write), followed from its start by a subscriber
(`console.events.subscribe`, the default 100 ms cooldown between polls). Latency: from sending
the `approve` signal to the subscriber yielding the `approval_decided` event the run published
on taking it (the signal, the workflow task that publishes, the poll update's reply, decoding).
Timing a run made only of local steps would measure the run instead: its events are delivered
when its one workflow task completes. The cost is what one subscriber adds to a run's history
over the same run unfollowed, per step (publishing adds nothing: each poll is an update).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import durable_runs
from measure import summary_ms
from scenario import APPROVER, WRITER_AGENT
from temporalio.client import Client, WorkflowHandle

from console.events import subscribe
from workflows.payloads import Approve

PROMPT = "Comment on T-3."
# Long enough for a subscriber that just read an event to be back in its long poll (its cooldown
# is 100 ms): then the signal's event reaches a subscriber that is waiting, as a caught-up one is.
SETTLE_S = 0.3
# A writer run's steps: two model calls and the gated write.
STEPS = 3


async def _approve(handle: WorkflowHandle[Any, Any]) -> float:
    """Approve the run's pending call; return when the signal was sent (perf_counter)."""
    call = await durable_runs.pending_call(handle)
    sent = time.perf_counter()
    await handle.signal(
        "approve", Approve(call_id=call["call_id"], approver=APPROVER, arguments_sha256=call["arguments_sha256"])
    )
    return sent


async def followed_run(client: Client, task_queue: str, *, settle: bool) -> tuple[float, WorkflowHandle[Any, Any]]:
    """One writer run read by a subscriber from its start: (signal → decision seen, in s), and the handle.

    `settle`: approve once the subscriber is back in its long poll; else at once after it saw the
    request (it is then in its cooldown, and the latency includes what is left of it).
    """
    handle = await durable_runs.start(client, task_queue, WRITER_AGENT, PROMPT)
    seen: dict[str, float] = {}
    requested = asyncio.Event()

    async def read() -> None:
        async for event in subscribe(client, handle.id):
            seen.setdefault(event.kind, time.perf_counter())
            if event.kind == "approval_requested":
                requested.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(requested.wait(), durable_runs.RUN_DEADLINE_S)
    if settle:
        await asyncio.sleep(SETTLE_S)
    sent = await _approve(handle)
    await asyncio.wait_for(asyncio.gather(reader, handle.result()), durable_runs.RUN_DEADLINE_S)
    return seen["approval_decided"] - sent, handle


async def event_phase(client: Client, task_queue: str, runs: int) -> dict[str, Any]:
    """Event latency over `runs` followed runs, and the history a subscriber adds per step."""
    await followed_run(client, task_queue, settle=False)  # warm-up
    waiting: list[float] = []
    cooling: list[float] = []
    followed = None
    for _ in range(runs):
        latency, followed = await followed_run(client, task_queue, settle=True)
        waiting.append(latency)
        latency, _ = await followed_run(client, task_queue, settle=False)
        cooling.append(latency)
    assert followed is not None
    alone = await durable_runs.start(client, task_queue, WRITER_AGENT, PROMPT)
    await _approve(alone)
    await asyncio.wait_for(alone.result(), durable_runs.RUN_DEADLINE_S)
    alone_events, alone_bytes, _ = await durable_runs.history_size(alone)
    with_events, with_bytes, _ = await durable_runs.history_size(followed)
    return {
        **summary_ms(waiting),
        "right_after_an_event": summary_ms(cooling),
        "runs": runs,
        "steps": STEPS,
        "subscriber_history_events_per_step": (with_events - alone_events) / STEPS,
        "subscriber_history_bytes_per_step": (with_bytes - alone_bytes) / STEPS,
    }
