"""`python -m console.replay HISTORY.json`: replay a recorded history against the code checked out here.

Before an upgrade (docs/deploy.md, "Upgrades and replay"): `temporal workflow show -w ID -o json`
writes a run's history; this replays it in Temporal's checking sandbox with the worker's
settings (the codec keys of an encrypted history, the namespace a signature binds) and exits 0
when the new code makes the same commands, 1 naming the first difference otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import WorkflowHistory

from runtime.build import replayer
from runtime.converter import data_converter
from runtime.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Replay each history file given; 0 when all replay, 1 when one does not, 2 on a usage error."""
    parser = argparse.ArgumentParser(
        prog="python -m console.replay", description="Replay recorded histories against this checkout's code."
    )
    parser.add_argument("history", type=Path, nargs="+", help="`temporal workflow show -w ID -o json > FILE`")
    parser.add_argument(
        "--workflow-id", help="the run's workflow id (signatures bind it); default: the file's `workflowId`"
    )
    parser.add_argument("--namespace", help="the namespace it ran in; default: AIRLOCK_TEMPORAL_NAMESPACE")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as err:
        parser.error(f"bad setting: {err.errors()[0]['msg']}")
    replaying = replayer(data_converter(settings), namespace=args.namespace or settings.temporal_namespace)
    failed = False
    for path in args.history:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            parser.error(f"{path}: not a history in JSON ({err})")
        workflow_id = args.workflow_id or data.pop("workflowId", None)
        if not isinstance(workflow_id, str) or not workflow_id:
            parser.error(f"{path} does not name its workflow: give --workflow-id")
        history = WorkflowHistory.from_json(workflow_id, data)
        result = asyncio.run(replaying.replay_workflow(history, raise_on_replay_failure=False))
        if result.replay_failure is not None:
            failed = True
            sys.stderr.write(f"{path}: does not replay: {result.replay_failure}\n")
        else:
            sys.stdout.write(f"{path}: replays\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
