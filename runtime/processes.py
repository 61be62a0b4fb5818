"""Several workflow-worker processes under one `python worker.py`: start them, watch them, stop them together.

A worker process runs workflow code on one core (the GIL); Temporal's guidance for Python is one
workflow-worker process per core. `python worker.py --processes N` (or `AIRLOCK_WORKER_PROCESSES`)
makes this process a supervisor of N children, started with multiprocessing's `spawn` so that each
builds its own Temporal runtime, client and worker from the one configuration the parent checked.
Each child is a whole Airlock worker: the model and read steps are local activities, which run in
the worker that runs the workflow, so activities live in every child, each with its own MCP
sessions (stdio servers are children of each worker process).

SIGTERM or SIGINT stops every child gracefully (each finishes its tasks within its grace period),
then the supervisor exits 0. A child that dies on its own is reported (`worker process died`, with
its exit code) and the supervisor stops the others and exits 1: whatever restarts the worker
(systemd, Kubernetes) restarts all of it, and no process runs on unnoticed in a half-dead worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from runtime.settings import Settings

log = structlog.get_logger("airlock.processes")

# How long stopped children get before they are killed: their own grace period and MCP shutdown.
STOP_DEADLINE_S = 40.0
PR_SET_PDEATHSIG = 1


class Supervisor:
    """N worker processes running `target(settings, index)`, stopped together."""

    def __init__(self, target: Callable[[Settings, int], None], settings: Settings, count: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._children = [
            self._context.Process(target=_child, args=(target, settings, index), name=f"airlock-worker-{index}")
            for index in range(count)
        ]
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        # Wakes the wait in `run`; a full pipe means it is awake already.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, bytes([signum]))

    def run(self) -> int:
        """Start every child; until a signal or a death, watch them; then stop the rest. The exit code."""
        os.set_blocking(self._wake_write, False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for child in self._children:
            child.start()
        log.info("worker processes started", processes=len(self._children), pids=[c.pid for c in self._children])
        died: BaseProcess | None = None
        while not self._stopping and died is None:
            wait([self._wake_read, *(child.sentinel for child in self._children)])
            died = next((child for child in self._children if child.exitcode is not None), None)
        if died is not None and not self._stopping:
            log.error(
                "worker process died; stopping the others",
                process=died.name,
                pid=died.pid,
                exit_code=died.exitcode,
            )
        else:
            log.info("stopping worker processes", processes=len(self._children))
        self.stop()
        return 1 if died is not None and not self._stopping else 0

    def stop(self) -> None:
        """SIGTERM every child still running, wait for them, SIGKILL any that outlive the deadline."""
        for child in self._children:
            if child.exitcode is None and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_S
        for child in self._children:
            child.join(max(deadline - time.monotonic(), 0))
            if child.exitcode is None:
                log.error("worker process did not stop in time; killed", process=child.name, pid=child.pid)
                child.kill()
                child.join()
        log.info("worker processes stopped", exit_codes=[child.exitcode for child in self._children])


def _child(target: Callable[[Settings, int], None], settings: Settings, index: int) -> None:
    """A child's entry point: die with the supervisor, then run the worker."""
    _die_with_parent()
    structlog.contextvars.bind_contextvars(worker_process=index)
    target(for_process(settings, index), index)


def _die_with_parent() -> None:
    # A supervisor killed with SIGKILL cannot stop its children; the kernel tells them instead (Linux).
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _shifted(bind: str, index: int) -> str:
    if not bind or index == 0:
        return bind
    host, _, port = bind.rpartition(":")
    return f"{host}:{int(port) + index}"


def for_process(settings: Settings, index: int) -> Settings:
    """The settings of worker process `index`: the same, but the metrics and health ports moved by `index`.

    Each process serves its own Temporal metrics and `/healthz`, so process i listens on the
    configured port + i (scrape each, as with any several-process exporter).
    """
    return settings.model_copy(
        update={
            "metrics_bind": _shifted(settings.metrics_bind, index),
            "health_bind": _shifted(settings.health_bind, index),
        }
    )
