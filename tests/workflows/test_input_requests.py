"""A server's input request (elicitation) is a durable human wait: listed, answered, sent back.

Real Temporal, the asking MCP server (tests/support/asking_mcp.py) as a real stdio child, the
scripted model. The server writes one line per call it received to `$ASKING_LOG`, so each test
sees what reached the server: the first send is told `cancel`, the send with the answer acts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from console.signing import generate_key, key_id_of, public_bytes, sign_decision
from tests.support.asking import answer, book, host_agent, project_for, server_log, start, wait_input
from tests.support.conditions import wait_for
from tests.support.histories import assert_no_task_failures, assert_replays
from tests.support.project import airlock_worker
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, pending_of
from workflows.identity import public_key_entry
from workflows.input_requests import answer_sha256


async def refused_update(handle: WorkflowHandle[Any, Any], payload: dict[str, Any]) -> str:
    """Send an `answer` update that must be refused; the reason."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update("answer", payload, result_type=dict)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


async def test_an_input_request_waits_for_a_valid_answer_and_the_server_gets_it(
    client: Client,
    tmp_path: Path,
) -> None:
    project = project_for(tmp_path, {"host": book()})
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        pending = await wait_input(handle)
        question = pending["question"]
        assert pending["tool"] == "book_room" and pending["server"] == "asking"
        assert question["mode"] == "form" and question["message"] == "How many people for room A?"
        assert question["requested_schema"]["required"] == ["size"]
        assert pending["deadline"] > pending["requested_at"]
        status = await handle.query("status", result_type=dict)
        assert status["state"] == "awaiting_approval" and status["pending"] == 1
        # The first send was told cancel: the server did not book.
        assert server_log(project) == [
            {
                "tool": "book_room",
                "action": "cancel",
                "content": None,
                "applied": False,
                "key": f"{handle.id}/call-host-0",
            }
        ]

        refusals = {
            "size": await refused_update(handle, answer(pending, "alice", content={"size": "three"})),
            "not a field of the form": await refused_update(
                handle, answer(pending, "alice", content={"size": 3, "extra": 1})
            ),
            "'size' is a required property": await refused_update(
                handle, answer(pending, "alice", content={"note": "x"})
            ),
            "not the hash of the question": await refused_update(
                handle, answer(pending, "alice", content={"size": 3}, question_sha256="0" * 64)
            ),
            "no input request is pending": await refused_update(
                handle, answer({**pending, "call_id": "call-host-9"}, "alice", content={"size": 3})
            ),
            "a value is a string": await refused_update(
                handle, answer(pending, "alice", content={"size": 3, "note": {"deep": "x"}})
            ),
            "content belongs to an accepted answer": await refused_update(
                handle, answer(pending, "alice", "decline", content={"size": 3})
            ),
            "forbids self-approval": await refused_update(handle, answer(pending, "carol", content={"size": 3})),
            "is not an approver": await refused_update(handle, answer(pending, "mallory", content={"size": 3})),
        }
        for expected, reason in refusals.items():
            assert expected in reason, (expected, reason)
        # Refused updates change nothing: still waiting, nothing new reached the server.
        assert [p["call_id"] for p in await pending_of(handle)] == [pending["call_id"]]
        assert len(server_log(project)) == 1

        recorded = await handle.execute_update(
            "answer", answer(pending, "alice", content={"size": 3, "note": "hi"}), result_type=dict
        )
        assert recorded["event"] == "answered" and recorded["actor"] == "alice" and recorded["action"] == "accept"
        assert recorded["answer_sha256"] == answer_sha256("accept", {"size": 3, "note": "hi"})
        assert recorded["identity"] == "asserted"
        result = await handle.result()
        assert result.status == "completed"
        assert spy.tool_outputs() == ["booked A for 3 (hi)"]
        applied = [line for line in server_log(project) if line["applied"]]
        assert applied == [
            {
                "tool": "book_room",
                "action": "accept",
                "content": {"size": 3, "note": "hi"},
                "applied": True,
                "key": f"{handle.id}/call-host-0/input-1",
            }
        ]
        events = [e["event"] for e in await handle.query("audit", result_type=list)]
        assert events == ["input_requested", "answered"]
        assert (await handle.query("status", result_type=dict))["state"] == "completed"
        assert_no_task_failures(await handle.fetch_history())
        await assert_replays(handle)


async def test_a_flood_of_refused_answers_is_counted_and_a_valid_answer_still_counts(
    client: Client,
    tmp_path: Path,
) -> None:
    project = project_for(tmp_path, {"host": book()})
    async with airlock_worker(client, project):
        handle = await start(client, project)
        pending = await wait_input(handle)
        for number in range(150):
            await handle.signal("answer", answer(pending, "alice", content={"size": f"x{number}"}))
        await handle.signal("answer", answer(pending, "alice", content={"size": 1}))
        await handle.result()
        audit = await handle.query("audit", result_type=list)
        assert sum(e["event"] == "refused" for e in audit) == 100
        [omitted] = [e for e in audit if e["event"] == "refusals_omitted"]
        assert omitted["count"] == 50
        assert audit[-1]["event"] == "answered"
        assert [line["action"] for line in server_log(project)] == ["cancel", "accept"]
        assert_no_task_failures(await handle.fetch_history())


async def test_a_read_and_an_approved_write_each_ask_and_the_write_runs_once(client: Client, tmp_path: Path) -> None:
    agent = (
        'name = "host"\ninstructions = "You book rooms."\nmcp_servers = ["asking"]\n'
        '[tools]\nfind_room = "auto"\nbook_room = "approve"\n\n[approval]\napprovers = ["alice", "bob"]\n'
    )
    script = {"host": [{"tool_call": {"name": "find_room", "arguments": {}}}, *book()]}
    project = project_for(tmp_path, script, agents={"host": agent})
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        floor = await wait_input(handle, "Which floor?")
        assert floor["question"]["requested_schema"]["properties"]["floor"]["enum"] == ["ground", "first", "second"]
        assert "not one of" in await refused_update(handle, answer(floor, "bob", content={"floor": "roof"}))
        await handle.execute_update("answer", answer(floor, "bob", content={"floor": "first"}), result_type=dict)
        # The write waits for its approval first; once approved and running, its server asks.
        [approval] = await wait_for(lambda: _approvals(handle), what="the approval of book_room")
        await handle.execute_update(
            "review",
            {
                "call_id": approval["call_id"],
                "approver": "alice",
                "arguments_sha256": approval["arguments_sha256"],
                "decision": "approve",
            },
            result_type=dict,
        )
        headcount = await wait_input(handle, "How many people for room A?")
        assert headcount["call_id"] == approval["call_id"]
        await handle.signal("answer", answer(headcount, "alice", content={"size": 9}))
        result = await handle.result()
        events = [e["event"] for e in await handle.query("audit", result_type=list)]
    assert spy.tool_outputs() == ["room A is free on the first floor", "booked A for 9 (no note)"]
    [record] = result.approvals
    assert (record.decision, record.outcome) == ("approved", "ok")
    assert [line["applied"] for line in server_log(project)] == [False, True]
    assert events == ["input_requested", "answered", "requested", "approved", "input_requested", "answered", "outcome"]
    await assert_replays(handle)


async def _approvals(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    return [p for p in await pending_of(handle) if "kind" not in p]  # an approval is listed without a kind


async def test_decline_and_cancel_reach_the_server(client: Client, tmp_path: Path) -> None:
    project = project_for(tmp_path, {"host": book()})
    async with airlock_worker(client, project):
        for action in ("decline", "cancel"):
            handle = await start(client, project)
            pending = await wait_input(handle)
            # The signal path, for any Temporal client; a bad one first, which changes nothing.
            await handle.signal("answer", answer(pending, "bob", action, content={"size": 2}))
            await handle.signal("answer", {"call_id": pending["call_id"], "action": "maybe"})
            await handle.signal("answer", answer(pending, "bob", action))
            await handle.result()
            received = [line for line in server_log(project) if line["key"].startswith(handle.id)]
            assert [line["action"] for line in received] == ["cancel", action]
            assert not any(line["applied"] for line in received)
            audit = await handle.query("audit", result_type=list)
            assert [e["event"] for e in audit] == ["input_requested", "refused", "refused", "answered"]
            assert audit[-1]["action"] == action
            await assert_replays(handle)


async def test_with_an_approvers_file_only_a_signed_answer_bound_to_the_question_counts(
    client: Client,
    tmp_path: Path,
) -> None:
    keys = {name: generate_key() for name in ("alice", "bob")}
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(
        "".join(f'[people.{n}]\nkeys = ["{public_key_entry(public_bytes(k))}"]\n' for n, k in keys.items())
    )
    project = project_for(tmp_path, {"host": book(tool="book_pair")}, approvers_file=approvers)
    async with airlock_worker(client, project):
        handle = await start(client, project)
        pending = await wait_input(handle)
        wf, call = handle.id, pending["call_id"]
        sha = pending["question"]["question_sha256"]

        def signed(signer: str, action: str = "accept", content: Any = None, **bind: Any) -> dict[str, Any]:
            token = sign_decision(
                keys[signer],
                signer=signer,
                approver=signer,
                namespace="default",
                workflow_id=bind.get("workflow_id", wf),
                run_id=pending["run_id"],
                call_id=bind.get("call_id", call),
                decision=bind.get("decision", "answer"),
                arguments_sha256=sha,
                answer_sha256=answer_sha256(bind.get("signed_action", action), content),
            )
            return answer(pending, signer, action, content, signature=token)

        attempts = {
            "unsigned": answer(pending, "alice", content={"size": 4}),
            "its call_id differs": signed("alice", content={"size": 4}, call_id="call-host-7"),
            "its workflow_id differs": signed("alice", content={"size": 4}, workflow_id="another-run"),
            "its decision differs": signed("alice", content={"size": 4}, decision="approve"),
            "its answer_sha256 differs": signed("alice", content={"size": 4}, signed_action="decline"),
        }
        for expected, payload in attempts.items():
            assert expected in await refused_update(handle, payload), expected
        good = signed("alice", content={"size": 4})
        recorded = await handle.execute_update("answer", good, result_type=dict)
        assert recorded["identity"].startswith("signed:alice/")
        # The server asks the same question a second time in the same call: the first signature
        # binds it exactly, but a signature is good for one answer only.
        second = await wait_for(lambda: _second_request(handle), what="the second input request")
        assert second["question"]["question_sha256"] == sha
        assert "already used" in await refused_update(handle, good)
        await handle.execute_update("answer", signed("bob", content={"size": 5}), result_type=dict)
        await handle.result()
        assert [line for line in server_log(project) if line["applied"]] == [
            {"tool": "book_pair", "action": "accept", "content": [4, 5], "applied": True, "key": None}
        ]
        await assert_replays(handle)


async def test_an_answer_signed_with_a_key_added_since_the_run_began_counts(client: Client, tmp_path: Path) -> None:
    old, rotated = generate_key(), generate_key()
    approvers = tmp_path / "approvers.toml"

    def listing(*keys: Any) -> str:
        entries = ", ".join(f'"{public_key_entry(public_bytes(k))}"' for k in keys)
        return f"[people.alice]\nkeys = [{entries}]\n"

    approvers.write_text(listing(old))
    project = project_for(tmp_path, {"host": book()}, approvers_file=approvers)
    async with airlock_worker(client, project):
        handle = await start(client, project)
        pending = await wait_input(handle)
        approvers.write_text(listing(old, rotated))  # a key rotation while the run waits
        sha = pending["question"]["question_sha256"]
        token = sign_decision(
            rotated,
            signer="alice",
            approver="alice",
            namespace="default",
            workflow_id=handle.id,
            run_id=pending["run_id"],
            call_id=pending["call_id"],
            decision="answer",
            arguments_sha256=sha,
            answer_sha256=answer_sha256("accept", {"size": 4}),
        )
        # The validator lets the unknown key through once; the handler reads the file again.
        recorded = await handle.execute_update(
            "answer", answer(pending, "alice", content={"size": 4}, signature=token), result_type=dict
        )
        await handle.result()
    assert recorded["identity"] == f"signed:alice/{key_id_of(rotated)}"
    await assert_replays(handle)


async def _second_request(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    audit = await handle.query("audit", result_type=list)
    if sum(e["event"] == "input_requested" for e in audit) < 2:
        return None
    found = [p for p in await pending_of(handle) if p.get("kind") == "input"]
    return found[0] if found else None


async def test_no_answer_before_the_deadline_is_cancel_or_a_failed_run(
    client: Client, time_skipping_client: Client, tmp_path: Path
) -> None:
    # Two hours of waiting in virtual time: nothing is in flight while a request waits.
    agents = {
        "host": host_agent(approval='timeout = "2h"'),
        "strict": host_agent("strict", approval='timeout = "2h"\non_timeout = "fail"'),
    }
    project = project_for(tmp_path, {"host": book(), "strict": book("B")}, agents=agents)
    async with airlock_worker(client, project):
        handle = await start(time_skipping_client, project)
        await handle.result()
        audit = await handle.query("audit", result_type=list)
        assert [e["event"] for e in audit] == ["input_requested", "timed_out"]
        assert [line["action"] for line in server_log(project)] == ["cancel", "cancel"]

        strict = await start(time_skipping_client, project, agent="strict")
        failure = await failure_of(strict)
        assert failure.type == "ApprovalTimedOutError" and "book_room" in failure.message
        await assert_replays(handle)
        await assert_replays(strict)


async def test_a_hostile_servers_questions_are_bounded(client: Client, tmp_path: Path) -> None:
    script = {
        "host": [
            {"tool_call": {"name": "giant_form", "arguments": {}}},
            {"tool_call": {"name": "nested_form", "arguments": {}}},
            {"tool_call": {"name": "flood_form", "arguments": {}}},
            {"message": "Done."},
        ]
    }
    project = project_for(tmp_path, script)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        # The flood: 1000 questions in one round become one input request at a time, and a call
        # asks at most five; each answer is sent back and the next question is listed.
        for number in range(5):
            pending = await wait_input(handle, f"Question {number}")
            assert len(await pending_of(handle)) == 1
            await handle.signal("answer", answer(pending, "alice", content={"n": number}))
        await handle.result()
        audit = await handle.query("audit", result_type=list)
        # The giant and the nested schema were never shown to anyone.
        asked = [e["reason"] for e in audit if e["event"] == "input_requested"]
        assert asked == [f"Question {n}" for n in range(5)]
        giant, nested, flood = spy.tool_outputs()
        assert "asked for input that Airlock does not accept" in giant and "more than the 16000 accepted" in giant
        assert "type 'object' is not a primitive" in nested
        # The sixth question is not listed: the model hears that the call could not be completed.
        assert "too many questions in one call" in flood
        history = await handle.fetch_history()
        assert len(history.to_json()) < 2_000_000  # the megabyte schema never entered history
        assert_no_task_failures(history)
        await assert_replays(handle)


async def test_a_server_that_needs_a_url_visited_first_waits_for_the_person(client: Client, tmp_path: Path) -> None:
    # The server answers -32042 (URLElicitationRequiredError) instead of asking mid-call.
    script = {"host": [{"tool_call": {"name": "open_drive", "arguments": {}}}, {"message": "Listed."}]}
    project = project_for(tmp_path, script)
    authorized = tmp_path / "authorized"
    project.environ["ASKING_AUTHORIZED"] = str(authorized)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        pending = await wait_input(handle)
        question = pending["question"]
        assert question["mode"] == "url" and question["url"] == "https://drive.example/connect"
        assert question["message"] == "Connect your drive first"
        authorized.touch()  # the person connects the drive at that URL, then says so
        await handle.execute_update("answer", answer(pending, "alice"), result_type=dict)
        result = await handle.result()
    assert result.status == "completed"
    assert spy.tool_outputs() == ["drive: 3 files"]
    assert [line["applied"] for line in server_log(project)] == [False, True]
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


async def test_a_hostile_url_elicitation_error_is_bounded_and_shown_to_nobody(client: Client, tmp_path: Path) -> None:
    script = {"host": [{"tool_call": {"name": "url_flood", "arguments": {}}}, {"message": "Gave up."}]}
    project = project_for(tmp_path, script)
    async with airlock_worker(client, project) as activities:
        spy = record_model(activities)
        handle = await start(client, project)
        result = await handle.result()
        audit = await handle.query("audit", result_type=list)
    assert result.status == "completed"
    [output] = spy.tool_outputs()
    assert "asked for input that Airlock does not accept" in output and "http(s) URL" in output
    assert [e for e in audit if e["event"] == "input_requested"] == []
    assert [line["tool"] for line in server_log(project)] == ["url_flood"]
    assert_no_task_failures(await handle.fetch_history())
