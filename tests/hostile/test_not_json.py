"""Only real JSON: NaN, Infinity, `1e309` and lone surrogates are refused before anything is hashed.

Python's `json` reads `{"amount": NaN}` and `1e309` (as infinity), and `"\\ud800"` into a string
that no encoder takes. Before, the gate hashed `{"amount":NaN}` while every payload wrote `null`
(the approver saw `null` under a hash of something else, and the server received `null`), and a
lone surrogate failed the workflow task on every attempt. Played as the hostile party acts:
- the scripted model (a script file, as AIRLOCK_SCRIPTED_MODEL_FILE) sends the raw argument text
  to a gated and to an auto tool of a real stdio MCP server: no approval is requested, nothing
  reaches the server, the model hears "not valid JSON" and the run completes;
- an approver's edit (signal and `review` update) carrying NaN, `1e309` or a lone surrogate is
  refused and audited, the call still waits unchanged, and the real approval runs what was shown;
- an answer to a server's input request carrying them is refused the same way, and the server
  receives only the real answer;
- a workflow input carrying them fails the run with a typed `InvalidInputError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from runtime.settings import PROJECT_ROOT
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, failure_of, pending_of, wait_pending, workflow_id
from tests.support.schema_project import calls_received, said_after_refusal, schema_project
from workflows.payloads import AgentRequest, AgentResult

RUN_DEADLINE_S = 30.0
PAY = {
    "name": "pay",
    "inputSchema": {
        "type": "object",
        "properties": {"amount": {"type": "number"}, "memo": {"type": "string"}},
        "required": ["amount"],
    },
}
# The model's raw argument text (what a provider returns), and what the model must be told.
NOT_JSON: dict[str, tuple[str, str]] = {
    "nan": ('{"amount": NaN, "memo": "rent"}', "amount: NaN is not a JSON number"),
    "overflow": (
        '{"amount": 1e309, "memo": "rent"}',
        "amount: Infinity is not a JSON number (nor is a number as large as 1e309)",
    ),
    "surrogate": ('{"amount": 5, "memo": "\\ud800"}', "memo: a string with a lone surrogate (\\ud800) is not text"),
}


def raw_json(text: str) -> RawValue:
    """`text` sent as it is, as a JSON payload any client could send (the converter is bypassed)."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


async def audit_of(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The run's audit trail, as plain JSON."""
    return await handle.query("audit", result_type=list)


async def test_arguments_that_are_not_json_are_the_models_mistake(client: Client, tmp_path: Path) -> None:
    scripts = {
        f"{policy}{case}": said_after_refusal("pay", raw)
        for case, (raw, _) in NOT_JSON.items()
        for policy in ("approve", "auto")
    }
    policies = {name: "approve" if name.startswith("approve") else "auto" for name in scripts}
    project = schema_project(tmp_path, [PAY], scripts, policies)
    async with airlock_worker(client, project):
        handles = {
            name: await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent=name, input="Pay the rent.", requester="carol"),
                id=workflow_id(name),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            for name in scripts
        }
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles.values())), RUN_DEADLINE_S)
        audits = {name: await audit_of(handle) for name, handle in handles.items()}
    for (name, handle), result in zip(handles.items(), results, strict=True):
        told = NOT_JSON[name.removeprefix("approve").removeprefix("auto")][1]
        assert result.output == f"Not run: Error: pay was not called: the arguments are not valid JSON: {told}.", name
        assert audits[name] == [], f"{name}: an approval was requested for arguments that are not JSON"
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)
    assert calls_received(project) == [], "arguments that are not JSON reached the server"


async def test_an_edit_that_is_not_json_is_refused_and_what_was_shown_runs(client: Client, tmp_path: Path) -> None:
    shown = {"amount": 5, "memo": "rent"}
    project = schema_project(tmp_path, [PAY], {"payer": said_after_refusal("pay", shown)}, {"payer": "approve"})
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="payer", input="Pay the rent.", requester="carol"),
            id=workflow_id("payer"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        canonical = json.dumps(shown, sort_keys=True, separators=(",", ":")).encode()
        assert pending["arguments_sha256"] == hashlib.sha256(canonical).hexdigest()
        # NaN through the ordinary client (pydantic writes it as `NaN`), the others as raw text.
        await handle.signal("approve", decision(pending, "alice", arguments={"amount": float("nan"), "memo": "rent"}))
        edit = json.dumps(decision(pending, "alice", arguments={"amount": "__amount__", "memo": "__memo__"}))
        await handle.signal("approve", raw_json(edit.replace('"__amount__"', "1e309").replace("__memo__", "rent")))
        await handle.signal("approve", raw_json(edit.replace('"__amount__"', "5").replace("__memo__", "\\ud800")))
        review = json.dumps(decision(pending, "alice", decision="approve", arguments={"amount": "__nan__"}))
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update("review", raw_json(review.replace('"__nan__"', "NaN")), result_type=dict)
        assert isinstance(failure.value.cause, ApplicationError)
        assert (
            failure.value.cause.message == "invalid review: not valid JSON: arguments/amount: NaN is not a JSON number"
        )

        async def refused() -> list[dict[str, Any]] | None:
            found = [e for e in await audit_of(handle) if e["event"] == "refused"]
            return found if len(found) >= 3 else None

        refusals = await wait_for(refused, what="3 refused edits")
        assert await pending_of(handle) == [pending], "the call still waits, unchanged"
        await handle.signal("approve", decision(pending, "alice"))
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
        audit = await audit_of(handle)
    reasons = [r["reason"] for r in refusals]
    assert reasons == [
        "invalid approve signal: not valid JSON: arguments/amount: NaN is not a JSON number",
        "invalid approve signal: not valid JSON: arguments/amount: Infinity is not a JSON number "
        "(nor is a number as large as 1e309)",
        "invalid approve signal: not valid JSON: arguments/memo: a string with a lone surrogate (\\ud800) is not text",
    ]
    assert all((r["call_id"], r["actor"]) == (pending["call_id"], "alice") for r in refusals)
    assert result.output == "It ran."
    assert calls_received(project) == [{"tool": "pay", "arguments": shown}], "the server got what was shown"
    assert [e["event"] for e in audit] == ["requested", "refused", "refused", "refused", "approved", "outcome"]
    assert audit[-1]["arguments_sha256"] == pending["arguments_sha256"]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


@pytest.mark.parametrize(
    ("text", "told"),
    [
        (
            '{"agent": "payer", "input": "Pay \\ud800 now.", "requester": "carol"}',
            "input: a string with a lone surrogate (\\ud800) is not text",
        ),
        (
            '{"agent": "payer", "input": "Pay.", "requester": "carol", "context": {"amount": NaN}}',
            "context/amount: NaN is not a JSON number",
        ),
    ],
)
async def test_an_input_that_is_not_json_fails_the_run_typed(
    client: Client, tmp_path: Path, text: str, told: str
) -> None:
    project = schema_project(tmp_path, [PAY], {"payer": said_after_refusal("pay", {"amount": 5})}, {"payer": "approve"})
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow", raw_json(text), id=workflow_id("not-json-input"), task_queue=project.settings.task_queue
        )
        cause = await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)
    assert (cause.type, cause.message) == ("InvalidInputError", f"invalid AgentWorkflow input: not valid JSON: {told}")
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
    assert calls_received(project) == []


ASKING_STDIO = f"""
[servers.asking]
transport = "stdio"
command = "python"
args = ["-m", "tests.support.asking_mcp"]
cwd = "{PROJECT_ROOT}"
env = ["ASKING_LOG"]
trust = "trusted"
"""
HOST = """
name = "host"
instructions = "You book rooms."
mcp_servers = ["asking"]

[tools]
"*" = "auto"

[approval]
approvers = ["alice"]
"""


async def test_an_answer_that_is_not_json_is_refused_and_the_real_one_reaches_the_server(
    client: Client, tmp_path: Path
) -> None:
    script = [{"tool_call": {"name": "book_room", "arguments": {"room": "A"}}}, {"message": "Booked."}]
    project = make_project(tmp_path, agents={"host": HOST}, script={"host": script}, servers=ASKING_STDIO)
    log = tmp_path / "asking.jsonl"
    project.environ["ASKING_LOG"] = str(log)
    async with airlock_worker(client, project):
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="host", input="Book room A.", requester="carol"),
            id=workflow_id("answer-not-json"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )

        async def asked() -> dict[str, Any] | None:
            found = [p for p in await pending_of(handle) if p.get("kind") == "input"]
            return found[0] if found else None

        question = await wait_for(asked, what="an input request")
        answer = {
            "call_id": question["call_id"],
            "approver": "alice",
            "question_sha256": question["question"]["question_sha256"],
            "action": "accept",
            "content": {"size": "__size__", "note": "__note__"},
        }
        text = json.dumps(answer)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(
                "answer", raw_json(text.replace('"__size__"', "NaN").replace("__note__", "hi")), result_type=dict
            )
        assert isinstance(failure.value.cause, ApplicationError)
        assert failure.value.cause.message == "invalid answer: not valid JSON: content/size: NaN is not a JSON number"
        await handle.signal("answer", raw_json(text.replace('"__size__"', "1e309").replace("__note__", "hi")))
        await handle.signal("answer", raw_json(text.replace('"__size__"', "3").replace("__note__", "\\ud800")))

        async def refused() -> list[dict[str, Any]] | None:
            found = [e for e in await audit_of(handle) if e["event"] == "refused"]
            return found if len(found) >= 2 else None

        refusals = await wait_for(refused, what="2 refused answers")
        await handle.execute_update("answer", {**answer, "content": {"size": 3, "note": "hi"}}, result_type=dict)
        result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
    assert [r["reason"] for r in refusals] == [
        "invalid answer signal: not valid JSON: content/size: Infinity is not a JSON number "
        "(nor is a number as large as 1e309)",
        "invalid answer signal: not valid JSON: content/note: a string with a lone surrogate (\\ud800) is not text",
    ]
    assert result.output == "Booked."
    applied = [json.loads(line) for line in log.read_text().splitlines() if json.loads(line)["applied"]]
    assert [entry["content"] for entry in applied] == [{"size": 3, "note": "hi"}]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
