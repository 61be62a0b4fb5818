"""The Temporal floor: a workflow whose steps are local activities that do nothing.

A K-read Airlock run is 2K+2 local activities (prepare, K+1 model turns, K reads) around the
Agents SDK's runner and the MCP calls. This workflow keeps the local activities, on a worker set up
as Airlock's (its data converter, no sandbox), and drops everything else, so its cost is what the
Python SDK itself takes for that many durable steps: Airlock cannot go below it on this machine.

    python bench/floor.py      # the floor's worker (the bench starts it; settings from the environment)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.converter import DATA_CONVERTER

SCRIPT = Path(__file__).resolve()
RUN_DEADLINE_S = 120.0


@activity.defn(name="floor.step")
async def step(text: str) -> str:
    """Hand the payload back: a durable step with no work in it."""
    return text


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    """`steps` local activities in a row, each passing on the last one's result."""

    @workflow.run
    async def run(self, steps: int, text: str) -> str:
        """Run the steps; return the payload."""
        for _ in range(steps):
            text = await workflow.execute_local_activity(step, text, start_to_close_timeout=timedelta(seconds=30))
        return text


async def run(client: Client, task_queue: str, steps: int) -> float:
    """One floor run of `steps` local activities; wall seconds."""
    began = time.perf_counter()
    handle = await client.start_workflow(
        FloorWorkflow.run,
        args=[steps, "a ticket's worth of text " * 10],
        id=f"floor-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
    )
    await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    return time.perf_counter() - began


def worker_env(address: str, task_queue: str) -> dict[str, str]:
    """Settings of the floor worker subprocess."""
    return {**os.environ, "FLOOR_TEMPORAL_ADDRESS": address, "FLOOR_TASK_QUEUE": task_queue}


async def _serve() -> None:
    client = await Client.connect(os.environ["FLOOR_TEMPORAL_ADDRESS"], data_converter=DATA_CONVERTER)
    async with Worker(
        client,
        task_queue=os.environ["FLOOR_TASK_QUEUE"],
        workflows=[FloorWorkflow],
        activities=[step],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(json.dumps({"event": "worker ready"}), file=sys.stderr, flush=True)
        await stop.wait()


def _main() -> None:
    asyncio.run(_serve())
    # As worker.py: skip interpreter teardown while Temporal's Rust threads may still run.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _main()
