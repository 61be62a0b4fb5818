"""A write's outcome is told truthfully, whatever the server answers after it applied the write.

Real Temporal, the outcome server (tests/support/outcome_mcp.py) as a real stdio child, the
scripted model. The server writes one line to `$OUTCOME_LOG` for every write it applied, before
it answers, so each test knows the write reached it:
- structured content that misses the tool's `outputSchema` is the server's answer, not a failure:
  the audit says `ok`, the model hears the result and a warning, never "Error";
- text nested 20,000 levels deep beside structured content is shown, not a crash of the renderer
  (which made an applied write `outcome_unknown`);
- an idempotent write retried by policy is not "not repeated": the model hears it may have been
  sent several times, under one idempotency key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import Project, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult
from workflows.steps import IDEMPOTENT_WRITE

OUTCOME_STDIO = """
[servers.outcome]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.outcome_mcp"]
env = ["OUTCOME_LOG"]
trust = "trusted"
timeout = "{timeout}"
"""


def clerk(policy: str) -> str:
    """An agent of the outcome server, every tool under `policy`."""
    return (
        'name = "clerk"\ninstructions = "You pay and file."\nmcp_servers = ["outcome"]\n'
        f'[tools]\n"*" = "{policy}"\n\n[approval]\napprovers = ["alice", "bob"]\n'
    )


def project_for(tmp_path: Path, tool: str, arguments: dict[str, Any], policy: str, timeout: str = "30s") -> Project:
    """A project whose clerk calls `tool` once, then says it is done."""
    script = {"clerk": [{"tool_call": {"name": tool, "arguments": arguments}}, {"message": "Done."}]}
    project = make_project(
        tmp_path, agents={"clerk": clerk(policy)}, script=script, servers=OUTCOME_STDIO.format(timeout=timeout)
    )
    project.environ["OUTCOME_LOG"] = str(tmp_path / "writes.jsonl")
    return project


def applied(project: Project) -> list[dict[str, Any]]:
    """Every write the server applied, in order."""
    path = Path(project.environ["OUTCOME_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def start(client: Client, project: Project) -> WorkflowHandle[Any, AgentResult]:
    """Start a clerk run requested by carol."""
    return await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="clerk", input="Go.", requester="carol"),
        id=workflow_id("outcome"),
        task_queue=project.settings.task_queue,
        result_type=AgentResult,
    )


async def approved_run(client: Client, project: Project) -> tuple[AgentResult, list[str], list[dict[str, Any]]]:
    """Run the clerk, alice approving its one call: the result, what the model heard, the audit."""
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        [pending] = await wait_pending(handle)
        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
    return result, spy.tool_outputs(), audit


async def test_a_write_whose_structured_content_misses_its_output_schema_is_ok_with_a_warning(
    client: Client, tmp_path: Path
) -> None:
    project = project_for(tmp_path, "pay", {"amount": 100}, "approve")
    result, heard, audit = await approved_run(client, project)
    assert result.status == "completed"
    assert [line["tool"] for line in applied(project)] == ["pay"], "the server applied the payment once"
    [outcome] = [entry for entry in audit if entry["event"] == "outcome"]
    assert outcome["outcome"] == "ok", "an applied write is never audited as an error"
    [text] = heard
    assert not text.startswith("Error"), text
    assert "paid 100" in text and '"receipt_id": 7' in text, "the model hears what the server answered"
    assert "does not match the tool's output schema" in text and "'receipt' is a required property" in text


async def test_deeply_nested_text_beside_structured_content_is_rendered_and_the_write_is_ok(
    client: Client, tmp_path: Path
) -> None:
    project = project_for(tmp_path, "archive", {"name": "Q3"}, "approve")
    result, heard, audit = await approved_run(client, project)
    assert result.status == "completed"
    assert [line["tool"] for line in applied(project)] == ["archive"]
    [outcome] = [entry for entry in audit if entry["event"] == "outcome"]
    assert outcome["outcome"] == "ok", outcome
    [text] = heard
    assert not text.startswith("Error") and text.startswith("[[[["), text[:200]
    assert '{"archived": "Q3"}' in text, "the structured content is shown beside the text"


async def test_an_idempotent_write_retried_by_policy_does_not_claim_it_was_not_repeated(
    client: Client, tmp_path: Path
) -> None:
    # Trusted `idempotentHint`: every attempt times out after the server applied it, and is sent again.
    project = project_for(tmp_path, "sync", {"name": "Q3"}, "auto", timeout="1s")
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        result = await handle.result()
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
    assert result.status == "completed"
    sends = applied(project)
    attempts = IDEMPOTENT_WRITE.retry.maximum_attempts
    assert len(sends) == attempts, "the policy sent it again after every unknown outcome"
    keys = {line["key"] for line in sends}
    assert keys == {f"{handle.id}/call-clerk-0"}, "every attempt carried the one idempotency key"
    [text] = spy.tool_outputs()
    assert text.startswith("Error: the outcome of outcome.sync is unknown"), text
    assert "not repeated" not in text
    assert f"may have been sent up to {attempts} times" in text and f"{handle.id}/call-clerk-0" in text
