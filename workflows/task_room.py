"""Room in one workflow task for local activity results, which Temporal records all at once.

A local activity's result is written as a marker when the workflow task that ran it completes, so
a fast model and fast reads can pile many results into one completion: past Temporal's limit on
one completion the run is terminated. Each local step reserves the most its result can be before
it starts, and keeps what its result took once it ends; when the task has no room left, the step
first waits for a new workflow task (a 1 ms timer ends this one once the steps in flight finish,
which costs up to a second on a busy server, so small results never wait). Runs inside the
workflow: deterministic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow

from workflows.limits import MAX_LOCAL_RESULTS_PER_TASK_BYTES

# Runs recorded before local results were budgeted per task never waited: they replay as they ran.
PATCH = "local-results-per-task"
TASK_BREAK = timedelta(milliseconds=1)
R = TypeVar("R", bound=BaseModel)


@dataclass
class TaskRoom:
    """Bytes of local results in the current workflow task (known by its history length).

    A step in flight counts at the most its result can be; a finished one at what it took.
    """

    task: int = -1
    used: int = 0
    # One step ends the task (its timer); the others wait for the new one.
    breaking: bool = False
    # Forced new tasks, for tests and logs.
    breaks: int = 0

    async def run(self, most: int, step: Callable[[], Awaitable[R]]) -> R:
        """Run the local step `step`, whose result is at most `most` bytes, where it has room."""
        task = await self._reserve(most)
        size = most
        try:
            result = await step()
            size = len(result.model_dump_json().encode())
            return result
        finally:
            self._observe()
            # A step that outlived its task (a long local activity) is recorded with the current one.
            self.used += size - most if self.task == task else size

    async def _reserve(self, size: int, budget: int = MAX_LOCAL_RESULTS_PER_TASK_BYTES) -> int:
        self._observe()
        while self.used and self.used + size > budget and workflow.patched(PATCH):
            if self.breaking:
                await workflow.wait_condition(lambda task=self.task: _task() != task)  # type: ignore[misc]
            else:
                self.breaking = True
                self.breaks += 1
                try:
                    await workflow.sleep(TASK_BREAK, summary="room for local results")
                finally:
                    self.breaking = False
            self._observe()
        self.used += size
        return self.task

    def _observe(self) -> None:
        task = _task()
        if task != self.task:
            self.task, self.used = task, 0


def _task() -> int:
    # The history length changes exactly when a new workflow task starts.
    return workflow.info().get_current_history_length()
