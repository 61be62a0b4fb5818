"""A worker process that serves Prometheus metrics, and reading them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from temporalio.testing import WorkflowEnvironment

from runtime.devserver import free_port
from tests.support.airlock_cli import address_of
from tests.support.project import Project
from tests.support.worker_process import project_env, worker_process


async def scrape(url: str) -> dict[str, list[Sample]]:
    """GET the Prometheus endpoint and parse it: family name → samples."""
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(url)
    response.raise_for_status()
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


@contextlib.asynccontextmanager
async def metrics_worker(project: Project, env: WorkflowEnvironment, **extra: str) -> AsyncIterator[str]:
    """`python worker.py` for `project` serving its metrics on a free port; yields the scrape URL.

    A worker process of its own: the listener is stopped with the process, by its pid.
    """
    bind = f"127.0.0.1:{free_port()}"
    async with worker_process(project_env(project, address_of(env), AIRLOCK_METRICS_BIND=bind, **extra)):
        yield f"http://{bind}/metrics"
