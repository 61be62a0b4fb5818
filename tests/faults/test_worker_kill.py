"""One worker process SIGKILLed while three runs are each at a different kind of step.

At the kill one run is inside a model call (the stub holds its request), one inside a read (a
stdio proxy in front of the tickets server holds the call) and one is waiting for approval.
After a new worker starts, every run completes and each step ran again exactly as often as the
kill forces. A kill during an approved write is
tests/workflows/test_worker_restart.py::test_worker_killed_after_write_reached_server_applies_it_once.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tickets.store import count_writes
from tests.support.conditions import alive, condition, wait_for
from tests.support.fault_stubs import RoutedStub
from tests.support.histories import assert_replays
from tests.support.openai_stub import Text, ToolCalls
from tests.support.project import AUTO_COMMENT_AGENT, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from tests.support.worker_process import REPO_ROOT, project_env, worker_process
from workflows.payloads import AgentRequest, AgentResult

API_KEY = "sk-test-kill-41d2"
RUN_DEADLINE_S = 60.0


def proxied_tickets(hold: str, log: Path) -> str:
    """`servers.toml` with the tickets server behind the hold proxy."""
    return f"""
[servers.tickets]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.stdio_hold_proxy", "--hold", "{hold}", "--log", "{log}", "--",
        "{sys.executable}", "-m", "mcp_servers.tickets"]
cwd = "{REPO_ROOT}"
env = ["TICKETS_DB"]
trust = "trusted"
idempotency_keys = true
"""


async def test_runs_at_a_model_call_a_read_and_an_approval_survive_one_sigkill(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    proxy_log = tmp_path / "proxy.log"
    stub = RoutedStub(
        {
            "model": [Text("Model run done.")],
            "read": [ToolCalls([("get_ticket", {"ticket_id": "T-3"})]), Text("Read run done.")],
            "approval": [ToolCalls([("close_ticket", {"ticket_id": "T-4"})]), Text("Approval run done.")],
        },
        hold={("model", 0)},
    )
    stub.start()
    try:
        project = make_project(
            tmp_path, agents={"support": AUTO_COMMENT_AGENT}, servers=proxied_tickets('\\"T-3\\"', proxy_log)
        )
        address = temporal_env.client.service_client.config.target_host
        env = project_env(
            project, address, AIRLOCK_MODEL_PROVIDER="openai", OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=stub.base_url
        )
        handles = {
            route: await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="support", input=f"[route:{route}] Please help.", requester="carol"),
                id=workflow_id(f"kill-{route}"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            for route in ("model", "read", "approval")
        }
        async with worker_process(env) as first:
            await wait_for(condition(lambda: stub.count("model") == 1), what="the model call to be in flight")
            await wait_for(condition(lambda: held_lines(proxy_log) == ["held"]), what="the read to be in flight")
            [pending] = await wait_pending(handles["approval"])
            assert count_writes(project.tickets_db) == 0
            first.kill()
            await first.proc.wait()
        assert first.proc.returncode == -9

        async with worker_process(env):
            await handles["approval"].signal("approve", decision(pending, "alice"))
            results = {
                route: await asyncio.wait_for(handle.result(), RUN_DEADLINE_S) for route, handle in handles.items()
            }
    finally:
        stub.stop()

    assert {route: result.output for route, result in results.items()} == {
        "model": "Model run done.",
        "read": "Read run done.",
        "approval": "Approval run done.",
    }
    assert stub.count("model") == 2, "the held model call ran once more, and nothing else did"
    assert held_lines(proxy_log) == ["held", "passed"], "the held read ran once more, and only once"
    assert results["read"].tool_calls == 1
    assert count_writes(project.tickets_db) == 1
    assert count_writes(project.tickets_db, "close_ticket") == 1
    [record] = results["approval"].approvals
    assert (record.decision, record.decided_by, record.outcome) == ("approved", "alice", "ok")
    pids = [int(line.split()[1]) for line in proxy_log.read_text().splitlines() if line.startswith("pid ")]
    assert len(pids) == 2, "one proxy per worker"
    await wait_for(condition(lambda: not any(alive(pid) for pid in pids)), what="every tickets proxy to exit")
    for handle in handles.values():
        await assert_replays(handle)


def held_lines(log: Path) -> list[str]:
    """The proxy log's `held` and `passed` lines, in order."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line in ("held", "passed")]
