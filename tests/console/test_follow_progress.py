"""`airlock run --follow` says each call's progress once per change, and never takes it back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.follow import Progress
from workflows.payloads import InFlightCall

pytestmark = pytest.mark.integration  # starts the npm `everything` MCP server

CALL = InFlightCall(call_id="call-1", server="everything", tool="slow", since=datetime(2026, 12, 2, tzinfo=UTC))


def test_progress_is_said_once_per_change_and_a_missing_heartbeat_does_not_reset_it() -> None:
    said: list[str] = []
    progress = Progress(said.append)
    for reported in (
        {},
        {"call-1": {"progress": 3, "total": 10}},
        {"call-1": {"progress": 3, "total": 10}},
        {},
        {"call-1": {"progress": 7, "total": 10}},
        {},
    ):
        progress.in_flight([CALL], reported)
    assert said == [
        "  ⋯ everything.slow (call-1): running",
        "  ⋯ everything.slow (call-1): 3/10",
        "  ⋯ everything.slow (call-1): 7/10",
    ]
