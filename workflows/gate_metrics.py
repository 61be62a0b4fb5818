"""What a run tells the worker's metrics about its gate: calls waiting, and how long decisions took.

Runs inside the workflow: no I/O, clock, randomness or environment (the banned-API lint checks).
Decision latency goes through `workflow.metric_meter()`, which records nothing while replaying,
so a decision is counted once however often its history is replayed. The number of waiting calls
is a fact about the run's current state, not an event: it is handed to the worker (an extern
function that runtime/metrics.py registers) on replay too, so a worker that rebuilds a run
counts its waiting calls again. Neither adds a command to the history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from temporalio import workflow
from temporalio.common import MetricHistogramFloat

from workflows.payloads import ApprovalRecord

DECISION_SECONDS = "airlock_approval_decision_seconds"
# Extern functions of the worker (absent in a replayer, which keeps no metrics).
PENDING_EXTERN = "airlock_pending_approvals"
RUN_ENDED_EXTERN = "airlock_run_ended"


class GateMetrics:
    """Reports one run's gated calls: waiting ones by agent, decided ones once each."""

    def __init__(self, carried: Iterable[ApprovalRecord] = ()) -> None:
        """Start with the records a continued run carries; their decisions were reported before."""
        self._reported = {record.call_id for record in carried if record.decision is not None}
        self._histogram: MetricHistogramFloat | None = None

    def observe(self, records: Iterable[ApprovalRecord]) -> None:
        """Report the calls waiting now and each decision not reported yet (requested → decided)."""
        waiting: Counter[str] = Counter()
        for record in records:
            if record.decision is None:
                waiting[record.agent] += 1
            elif record.call_id not in self._reported and record.decided_at is not None:
                self._reported.add(record.call_id)
                seconds = (record.decided_at - record.requested_at).total_seconds()
                self._decisions().record(max(seconds, 0.0), {"agent": record.agent, "decision": record.decision})
        report = _extern(PENDING_EXTERN)
        if report is not None:
            report(workflow.info().run_id, dict(waiting))

    def _decisions(self) -> MetricHistogramFloat:
        if self._histogram is None:
            self._histogram = workflow.metric_meter().create_histogram_float(
                DECISION_SECONDS,
                "Time from a gated call's request to its decision",
                "s",
            )
        return self._histogram


def _extern(name: str) -> Callable[..., Any] | None:
    found = workflow.extern_functions().get(name)
    return found if callable(found) else None
