"""The people's side's errors (CLI, inbox, codec server), under one base: `ConsoleError`.

The `airlock` command line gives each its exit status in `console.cli.run`. Failures that come from
a run are the types of `workflows/errors.py`; the whole vocabulary is in docs/errors.md.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base of every error of the people's side; the message says why."""


class CliError(ConsoleError):
    """A command that could not do what it was asked; the message says why (exit status 1)."""


class DecisionNotRecordedError(ConsoleError):
    """A decision the run refused, or that the CLI or inbox would not send; printed as `refused: ...`."""


class UsageError(ConsoleError):
    """Arguments that make no sense together (exit status 2)."""
