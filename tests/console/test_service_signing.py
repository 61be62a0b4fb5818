"""A service decides from Python with `console.signing.sign_review`, as the README's snippet does.

The README's Python block itself is run, twice, against a stack set up like `--dev` (only signed
decisions count): each time it starts a new run, signs alice's approval and the run completes.
`sign_review` is also driven the way a service with its own rules would: an edit, a rejection
with a reason, and a service key vouching for a person; a signature for another run is refused.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from console.signing import arguments_sha256, load_private_key, sign_review
from tests.support.dev_stack import DevStack, dev_stack
from tests.support.runs import wait_pending, workflow_id
from tests.support.worker_process import REPO_ROOT

README = REPO_ROOT / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
INPUT = {"agent": "support", "input": "Ticket T-1 is fixed; please close it.", "requester": "carol"}


def service_snippet() -> str:
    """The README's "From a Python service" block."""
    text = README.read_text()
    start = text.index("From a Python service")
    match = PYTHON_BLOCK.search(text, start)
    assert match is not None, "no python block after 'From a Python service'"
    return match[1]


async def run_snippet(stack: DevStack, source: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(source),
        cwd=stack.cwd,
        env=stack.shell_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def teardown_abort(code: int, err: str) -> bool:
    """The known abort of a short-lived temporalio client process at interpreter exit, after its work.

    Temporal's Rust threads can outlive Python's finalization (temporalio/sdk-python#300; the
    `airlock` CLI and the worker skip teardown for it). The snippet's output is still checked whole.
    """
    return code == -signal.SIGABRT and "PyGILState_Release" in err and "finalizing" in err


async def test_the_readme_service_snippet_starts_and_decides_a_run_twice(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    source = tmp_path / "service.py"
    source.write_text(service_snippet())
    async with dev_stack(temporal_env, tmp_path) as stack:
        for attempt in (1, 2):  # a second try starts a second run: no WorkflowAlreadyStartedError
            code, out, err = await run_snippet(stack, source)
            assert code == 0 or teardown_abort(code, err), f"try {attempt}: exit {code}\nstdout: {out}\nstderr: {err}"
            assert re.fullmatch(r"svc-billing-[0-9a-f]{8} approved Closed T-1 as fixed after checking it\.\n", out), out


async def start(client: Client) -> tuple[Any, dict[str, Any]]:
    handle = await client.start_workflow("AgentWorkflow", INPUT, id=workflow_id("svc"), task_queue="airlock")
    (call,) = await wait_pending(handle)
    return handle, call


async def test_a_service_signs_edits_rejections_and_for_people_it_vouches_for(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = temporal_env.client
    async with dev_stack(temporal_env, tmp_path) as stack:
        keys = stack.cwd / ".airlock" / "dev"
        alice, inbox = load_private_key(keys / "alice.key"), load_private_key(keys / "inbox.key")

        # An edit: the call runs with the service's arguments, the audit keeps both hashes.
        handle, call = await start(client)
        edit = {"ticket_id": "T-1", "resolution": "duplicate"}
        payload = sign_review(
            alice,
            call,
            workflow_id=handle.id,
            namespace=client.namespace,
            approver="alice",
            decision="approve",
            arguments=edit,
        )
        recorded = await handle.execute_update("review", payload)
        assert recorded["decision"] == "approved" and recorded["identity"].startswith("signed:alice/")
        await handle.result()
        approved = next(e for e in await handle.query("audit") if e["event"] == "approved")
        assert approved["edited_from_sha256"] == call["arguments_sha256"]
        assert approved["arguments_sha256"] == arguments_sha256(edit)

        # A rejection with the reason, signed by the inbox's service key for bob.
        handle, call = await start(client)
        payload = sign_review(
            inbox,
            call,
            workflow_id=handle.id,
            namespace=client.namespace,
            approver="bob",
            decision="reject",
            reason="not from billing",
            signer="inbox",
        )
        recorded = await handle.execute_update("review", payload)
        assert recorded["decision"] == "rejected" and recorded["identity"].startswith("signed:inbox/")
        assert "stays open" in (await handle.result())["output"]

        # A signature bound to another run of the service's changes nothing there.
        handle, call = await start(client)
        other, _ = await start(client)
        payload = sign_review(
            alice, call, workflow_id=other.id, namespace=client.namespace, approver="alice", decision="approve"
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await other.execute_update("review", payload)
        assert "differs" in str(refused.value.cause)
        with pytest.raises(ValueError, match="run_id"):
            sign_review(alice, {**call, "run_id": None}, workflow_id=handle.id, approver="alice", decision="approve")
        for run in (handle, other):
            await run.terminate("done")
