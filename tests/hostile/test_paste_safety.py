"""What Airlock prints to be pasted is safe to paste.

The workflow id comes from a caller and the call id from a model, so either may hold shell
syntax. The approve and reject commands printed by the pipeline's `status` and sent in the
approval webhook's notice are run here with `bash -c`, as a person pasting them would, with an
`airlock` on PATH that only records its argv: each command reaches it as exactly the intended
words, and none of the embedded `touch` commands runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from mcp_servers.tickets.store import count_writes
from tests.support.conditions import condition, wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.hostile_model import call, install, say
from tests.support.pipelines import status_pending
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending
from tests.support.webhook import Webhook
from workflows.payloads import PipelineResult

CLOSE = {"ticket_id": "T-4"}
RECORDER = """#!{python}
import json, os, sys
with open(os.environ["ARGV_FILE"], "w") as out:
    json.dump(sys.argv[1:], out)
"""


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A loopback webhook that accepts every notice."""
    hook = Webhook(failures=0)
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(5)


def recorded(argv_file: Path) -> list[str]:
    """The argv the fake `airlock` wrote."""
    argv: list[str] = json.loads(argv_file.read_text())
    return argv


def pwned(root: Path) -> list[str]:
    """Files the embedded `touch` commands would have made."""
    return sorted(path.name for path in root.glob("pwned*"))


async def pasted(command: str, bin_dir: Path, argv_file: Path) -> list[str]:
    """Run `command` as a person pasting it into bash would; the argv the fake `airlock` got."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "ARGV_FILE": str(argv_file)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (command, stderr.decode())
    return recorded(argv_file)


async def test_printed_commands_are_safe_to_paste(client: Client, tmp_path: Path, webhook: Webhook) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "airlock"
    fake.write_text(RECORDER.format(python=sys.executable))
    fake.chmod(0o755)
    pipeline_id = f'paste $(touch {tmp_path}/pwned) `touch {tmp_path}/pwned` "it\'s" {uuid.uuid4().hex[:8]}'
    child_id = f"{pipeline_id}/fix"
    call_id = f"c'; touch {tmp_path}/pwned2; '"
    project = make_project(tmp_path, approval_webhook_url=webhook.url)
    async with airlock_worker(client, project) as activities:
        model = install(activities)
        model.turns[child_id] = [[call("close_ticket", CLOSE, call_id)], [say("Closed T-4.")]]
        pipeline = await client.start_workflow(
            "PipelineWorkflow",
            {"steps": [{"name": "fix", "agent": "support"}], "input": "T-4", "requester": "carol"},
            id=pipeline_id,
            task_queue=project.settings.task_queue,
            result_type=PipelineResult,
        )
        [entry] = await wait_for(lambda: status_pending(pipeline), what="the pending call in the pipeline status")
        child = client.get_workflow_handle(child_id)
        [real] = await wait_pending(child)
        await wait_for(condition(lambda: bool(webhook.received)), what="the webhook notice")
        [notice] = webhook.received
        assert (entry["workflow_id"], entry["call_id"]) == (child_id, call_id)
        assert (notice["workflow_id"], notice["pending"]["call_id"]) == (child_id, call_id)

        intended = [child_id, call_id, "--sha256", real["arguments_sha256"], "--as", "<you>"]
        commands: list[tuple[str, str, list[str]]] = []
        for source, printed in (("status", entry), ("webhook", notice)):
            commands.append((source, printed["approve_command"], ["approve", *intended]))
            commands.append((source, printed["reject_command"], ["reject", *intended, "--reason", "<why>"]))
        for index, (source, command, expected) in enumerate(commands):
            argv = await pasted(command, bin_dir, tmp_path / f"argv-{index}.json")
            assert argv == expected, (source, command)
        assert pwned(tmp_path) == [], "a pasted command ran a command embedded in it"

        await child.signal("approve", decision(real, "alice"))
        result = await asyncio.wait_for(pipeline.result(), 30)
    [record] = result.steps[0].approvals
    assert (record.call_id, record.arguments, record.outcome) == (call_id, CLOSE, "ok")
    assert count_writes(project.tickets_db, "close_ticket") == 1
    for handle in (pipeline, child):
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
