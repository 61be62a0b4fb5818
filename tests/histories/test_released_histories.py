"""Histories recorded by earlier releases replay on this code: in-flight runs survive an upgrade.

The files are written by `python -m tests.histories.record` on a released version and never
re-recorded; a change that breaks one needs `workflow.patched` (docs/compatibility.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from runtime.build import replayer
from workflows.payloads import AgentRequest

HERE = Path(__file__).resolve().parent
RECORDED = sorted(HERE.glob("*.json"))


def test_every_scenario_of_the_release_is_on_file() -> None:
    names = {path.stem.split("-", 1)[1].rsplit("-", 1)[0] for path in RECORDED}
    assert {"approval", "pipeline", "continue-as-new", "timeout"} <= names


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_a_released_history_replays(path: Path) -> None:
    data = json.loads(await asyncio.to_thread(path.read_text))
    history = WorkflowHistory.from_json(data.pop("workflowId"), data)
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


def test_a_continued_run_starts_from_a_released_checkpoint() -> None:
    # The second run of the continue-as-new scenario begins with the Checkpoint the first one
    # carried: its input must still decode as this version's checkpoint.
    data = json.loads((HERE / "0.2.0-continue-as-new-1.json").read_text())
    started = data["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = started["input"]["payloads"][0]
    request = AgentRequest.model_validate_json(base64.b64decode(payload["data"]))
    assert request.checkpoint is not None and request.checkpoint.turn > 0
