"""The README's `--dev` walkthrough runs word for word, and every command Airlock prints works pasted.

A person follows the README on the stack `python worker.py --dev` starts: each `sh` block that
starts a run is run in order, line by line, with bash, in a directory holding `.airlock/dev/`.
The only words replaced are the placeholders the README tells the reader to fill in from what
they were shown (`HASH`, `RUN_ID`); `localhost:7233` is moved by the documented settings.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.support.conditions import wait_for
from tests.support.dev_stack import DevStack, dev_stack
from tests.support.runs import workflow_id
from tests.support.worker_process import REPO_ROOT

README = REPO_ROOT / "README.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
# `airlock approve|reject|sign WORKFLOW_ID CALL_ID`: whose HASH and RUN_ID a line needs.
DECIDES = re.compile(r"airlock (?:approve|reject|sign) (\S+) (\S+)")


def walkthrough_blocks(text: str) -> list[str]:
    """The README's `sh` blocks that start a run on the dev stack, in order."""
    return [block for block in SH_BLOCK.findall(text) if "temporal workflow start" in block]


def command_lines(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comment-only lines dropped."""
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


async def shown_call(client: Client, workflow: str, call_id: str) -> dict[str, Any]:
    """The call as `pending_approvals` shows it to the reader, once the run waits for it."""

    async def check() -> dict[str, Any] | None:
        try:
            calls = await client.get_workflow_handle(workflow).query("pending_approvals", result_type=list)
        except RPCError:
            return None  # a pipeline's child not started yet
        return next((c for c in calls if c["call_id"] == call_id), None)

    return await wait_for(check, timeout=30, what=f"{workflow} waiting on {call_id}")


async def completed(client: Client, workflow: str) -> bool:
    """Whether the run has ended, completed."""
    status = (await client.get_workflow_handle(workflow).describe()).status
    assert status in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED), (workflow, status)
    return status == WorkflowExecutionStatus.COMPLETED


async def run_line(stack: DevStack, client: Client, line: str) -> str:
    """Fill in what the reader was shown, run the line, and return its stdout; it must exit 0."""
    decides = DECIDES.search(line)
    if decides is not None and re.search(r"\b(HASH|RUN_ID)\b", line):
        call = await shown_call(client, decides[1], decides[2])
        line = re.sub(r"\bHASH\b", call["arguments_sha256"], line)
        line = re.sub(r"\bRUN_ID\b", call["run_id"], line)
    code, out, err = await stack.sh(line)
    assert code == 0, f"{line}\n-> exit {code}\nstdout: {out}\nstderr: {err}"
    return out


async def test_the_dev_walkthrough_runs_word_for_word(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    blocks = walkthrough_blocks(README.read_text())
    started = [re.search(r"--workflow-id (\S+)", block) for block in blocks]
    runs = [m[1] for m in started if m is not None]
    # The first run, the plain-signal run (a new one: `t1` has finished by then), the pipeline.
    assert len(runs) == 3 and len(set(runs)) == 3, runs
    client = temporal_env.client
    async with dev_stack(temporal_env, tmp_path) as stack:
        for block, run in zip(blocks, runs, strict=True):
            for line in command_lines(block):
                await run_line(stack, client, line)
            assert await wait_for(lambda run=run: completed(client, run), timeout=30, what=f"{run} completed")
        # docs/deploy.md's replay step, from the command line, on the first run's history.
        deploy = (REPO_ROOT / "docs" / "deploy.md").read_text()
        replay = [line for block in SH_BLOCK.findall(deploy) for line in command_lines(block) if "history.json" in line]
        assert len(replay) == 2, replay
        for line in replay:
            out = await run_line(stack, client, line.replace("<workflow id>", runs[0]))
        assert out.strip() == "history.json: replays", out


async def test_every_printed_command_works_pasted_on_dev(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    client = temporal_env.client
    async with dev_stack(temporal_env, tmp_path) as stack:
        # `airlock run --follow` prints the approve command; the person pastes it in another terminal.
        run = workflow_id("follow")
        follow = await stack.sh_process(
            f"airlock run support 'Ticket T-1 is fixed; please close it.' --follow --id {run} --requester carol"
        )
        approve = await follow.line_starting("approve:")
        assert "--key .airlock/dev/alice.key" in approve and "--as alice" in approve, approve
        code, out, err = await stack.sh(approve.removeprefix("approve:").strip())
        assert code == 0, (approve, out, err)
        assert await follow.exit_code() == 0, follow.output()

        # `airlock pending` and `airlock show`, on a second run: the command each prints, as printed.
        for lister in ("pending -o json", "show {run} -o json"):
            again = workflow_id("listed")
            code, out, err = await stack.sh(
                f"airlock run support 'Ticket T-1 is fixed; please close it.' --id {again} --requester carol"
            )
            assert code == 0, (out, err)
            await shown_call(client, again, "call-support-1")
            code, out, err = await stack.sh("airlock " + lister.format(run=again))
            assert code == 0, (out, err)
            data = json.loads(out)
            calls = data if isinstance(data, list) else data["pending"]
            command = next(c["approve_command"] for c in calls if c.get("workflow_id", again) == again)
            assert shlex.split(command)[-4:] == ["--as", "alice", "--key", ".airlock/dev/alice.key"], command
            code, out, err = await stack.sh(command)
            assert code == 0, (command, out, err)
            assert await wait_for(lambda again=again: completed(client, again), timeout=30, what="completed")

        # A pipeline's `status` (the README's pipeline section) prints the child's command with the key.
        pipeline = workflow_id("incident")
        code, out, err = await stack.sh(
            "temporal workflow start --type PipelineWorkflow --task-queue airlock --workflow-id "
            + pipeline
            + """ --input '{"pipeline": "incident", "input": "T-1", "requester": "carol"}'"""
        )
        assert code == 0, (out, err)
        await shown_call(client, f"{pipeline}/fix", "call-support-1")

        async def printed() -> str | None:
            status = await client.get_workflow_handle(pipeline).query("status", result_type=dict)
            return status["pending"][0]["approve_command"] if status["pending"] else None

        command = await wait_for(printed, timeout=30, what="the pipeline's status names the call")
        assert "--key" in shlex.split(command), command
        code, out, err = await stack.sh(command)
        assert code == 0, (command, out, err)
        assert await wait_for(lambda: completed(client, pipeline), timeout=30, what="pipeline completed")


async def test_a_key_the_approvers_file_lacks_is_named_with_where_to_add_it(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = temporal_env.client
    async with dev_stack(temporal_env, tmp_path) as stack:
        # A newcomer makes their own key, as the README's CLI section shows, and uses it on --dev.
        code, entry, err = await stack.sh("airlock keygen alice")
        assert code == 0, err
        run = workflow_id("keygen")
        code, out, err = await stack.sh(
            f"airlock run support 'Ticket T-1 is fixed; please close it.' --id {run} --requester carol"
        )
        assert code == 0, (out, err)
        call = await shown_call(client, run, "call-support-1")
        code, out, err = await stack.sh(
            f"airlock approve {run} call-support-1 --sha256 {call['arguments_sha256']} --as alice"
        )
        assert code == 1, (out, err)
        key_file = stack.cwd / "home" / ".config" / "airlock" / "alice.key"
        public = re.search(r'keys = \["(ed25519:[^"]+)"\]', entry)
        assert public is not None, entry
        assert "unknown key" in err
        assert str(key_file) in err, err
        assert ".airlock/dev/approvers.toml" in err, err
        assert f'[people.alice] keys = ["{public[1]}"]' in err, err
        # Nothing was decided: the run still waits for alice.
        assert (await shown_call(client, run, "call-support-1"))["approved_by"] == []
