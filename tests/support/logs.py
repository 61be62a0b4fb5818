"""Logging as the worker configures it, captured for a test and put back afterwards."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
from temporalio import workflow

from runtime import logs
from runtime.redaction import Redactor


@contextlib.contextmanager
def worker_logs(redactor: Redactor, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Configure logging as the worker does (JSON to stderr, scrubbed); yield what it wrote so far.

    Whatever logging looked like before is put back, so other tests keep pytest's own capture.
    """
    root = logging.getLogger()
    saved = root.handlers[:], root.level, workflow.logger.workflow_info_on_message
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    capsys.readouterr()
    written: list[str] = []

    def text() -> str:
        written.append(capsys.readouterr().err)
        return "".join(written)

    logs.configure("INFO", "json", redactor=redactor)
    try:
        yield text
    finally:
        root.handlers[:], level, workflow.logger.workflow_info_on_message = saved
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)
        structlog.reset_defaults()
