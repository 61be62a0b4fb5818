"""The two-sided contract of `workflows/payloads.py`: strict inbound messages, tolerant reply views.

Replies are encoded the way a worker sends them (the project's data converter), a field a newer
worker might add is planted at every level, and the reply is decoded the way a client reads it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import Payload

from runtime.converter import DATA_CONVERTER
from workflows import payloads
from workflows.payloads import (
    AgentRequest,
    AgentResult,
    Answer,
    ApprovalNotice,
    ApprovalRecord,
    ApprovalRecordView,
    Approve,
    AuditEntry,
    AuditEntryView,
    CallDetails,
    CallFields,
    Checkpoint,
    ChildPending,
    ConversationItem,
    InFlightCall,
    InputQuestion,
    PendingApproval,
    PendingApprovalView,
    PipelinePending,
    PipelineRequest,
    PipelineResult,
    PipelineStatus,
    Reject,
    Review,
    RunPlan,
    RunStatus,
    StepResult,
    ToolCall,
    ToolReply,
    Usage,
    View,
    Wire,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SHA = "a" * 64
NEWER = "field_from_a_newer_worker"


def _record() -> ApprovalRecord:
    return ApprovalRecord(
        call_id="call-1",
        agent="support",
        server="tickets",
        tool="close_ticket",
        arguments={"ticket_id": "T-1"},
        arguments_sha256=SHA,
        requested_at=NOW,
        decision="approved",
        decided_by="alice",
    )


def _pending(kind: str = "approval") -> PendingApproval:
    question = InputQuestion(message="How many?", question_sha256=SHA) if kind == "input" else None
    return PendingApproval(
        call_id="call-1",
        agent="support",
        server="tickets",
        tool="close_ticket",
        arguments={"ticket_id": "T-1"},
        arguments_sha256=SHA,
        requested_at=NOW,
        deadline=None,
        kind=kind,  # type: ignore[arg-type]
        question=question,
    )


def _audit() -> AuditEntry:
    return AuditEntry.of_call(_record(), "approved", NOW, actor="alice", identity="asserted")


def _step() -> StepResult:
    return StepResult(name="close", agent="support", workflow_id="p/close", approvals=[_record()])


# What the worker answers, per query, update and result: (what a client parses with, the reply).
REPLIES: dict[str, tuple[Any, BaseModel | list[Any]]] = {
    "query pending_approvals": (list[PendingApprovalView], [_pending(), _pending("input")]),
    "query status (agent)": (
        RunStatus,
        RunStatus(
            state="running",
            agent="support",
            turn=1,
            tool_calls=0,
            in_flight=[InFlightCall(call_id="c", server="s", tool="t", since=NOW)],
        ),
    ),
    "query status (pipeline)": (
        PipelineStatus,
        PipelineStatus(
            state="awaiting_approval",
            pipeline="triage",
            current="close",
            steps=[_step()],
            pending=[
                PipelinePending(
                    step="close",
                    workflow_id="p/close",
                    call_id="call-1",
                    agent="support",
                    server="tickets",
                    tool="close_ticket",
                    arguments={},
                    arguments_sha256=SHA,
                    approve_command="airlock approve ...",
                )
            ],
        ),
    ),
    "query audit": (list[AuditEntryView], [_audit()]),
    "query call_details": (
        CallDetails,
        CallDetails(
            pending=_pending(),
            description="Close a ticket.",
            input_schema={"type": "object"},
            conversation=[ConversationItem(kind="message", role="user", text="close T-1")],
        ),
    ),
    "update review": (ApprovalRecordView, _record()),
    "update answer": (AuditEntryView, _audit()),
    "result AgentWorkflow": (AgentResult, AgentResult(output="done", approvals=[_record()], usage=Usage(requests=1))),
    "result PipelineWorkflow": (PipelineResult, PipelineResult(pipeline="triage", output="done", steps=[_step()])),
}


# Objects whose keys are data (a tool's arguments, a schema), not fields of the contract.
FREE_FORM = {"arguments", "input_schema", "requested_schema", "content"}


def _plant(value: Any) -> Any:
    """`value` (JSON) with an unknown field added to every object of the contract in it."""
    if isinstance(value, dict):
        kept = {k: v if k in FREE_FORM else _plant(v) for k, v in value.items()}
        return {**kept, NEWER: {"any": ["thing"]}}
    if isinstance(value, list):
        return [_plant(v) for v in value]
    return value


def _sent(reply: Any) -> Payload:
    [payload] = DATA_CONVERTER.payload_converter.to_payloads([reply])
    return payload


def _newer(payload: Payload) -> Payload:
    planted = _plant(json.loads(payload.data))
    return Payload(metadata=dict(payload.metadata), data=json.dumps(planted).encode())


@pytest.mark.parametrize("name", list(REPLIES))
def test_a_view_reads_a_newer_workers_reply_and_ignores_what_it_does_not_know(name: str) -> None:
    view, reply = REPLIES[name]
    sent = _sent(reply)
    [read] = DATA_CONVERTER.payload_converter.from_payloads([_newer(sent)], [view])
    # What the client knows reads back exactly as it was sent; the unknown fields are gone.
    assert _sent(read).data == sent.data
    assert NEWER.encode() not in _sent(read).data


def test_every_reply_type_is_a_view_all_the_way_down() -> None:
    for name, (view, _) in REPLIES.items():
        item = view.__args__[0] if hasattr(view, "__args__") else view
        assert issubclass(item, View), name
        for field in item.model_fields.values():
            for inner in _models_in(field.annotation):
                assert issubclass(inner, View), (name, inner)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation, *(m for f in annotation.model_fields.values() for m in _models_in(f.annotation))]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _with_unknown(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=NEWER):
        model.model_validate({**data, NEWER: 1})


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (AgentRequest, {"agent": "support", "input": "hi"}),
        (PipelineRequest, {"pipeline": "triage"}),
        (Approve, {"call_id": "c", "approver": "alice", "arguments_sha256": SHA}),
        (Reject, {"call_id": "c", "approver": "alice", "arguments_sha256": SHA}),
        (Review, {"call_id": "c", "approver": "alice", "arguments_sha256": SHA, "decision": "approve"}),
        (
            Answer,
            {"call_id": "c", "approver": "alice", "question_sha256": SHA, "action": "decline"},
        ),
        (ToolCall, {"agent": "a", "server": "s", "tool": "t", "arguments": {}}),
    ],
)
def test_an_inbound_message_with_an_unknown_field_is_still_refused(
    model: type[BaseModel], data: dict[str, Any]
) -> None:
    model.model_validate(data)
    _with_unknown(model, data)


def test_what_the_worker_receives_back_is_strict_inside_too() -> None:
    """A checkpoint, a child's `child_pending`, a notice and a tool step's reply are strict at every level."""
    record = _record().model_dump(mode="json")
    _with_unknown(ApprovalRecord, record)
    _with_unknown(AuditEntry, _audit().model_dump(mode="json"))
    _with_unknown(PendingApproval, _pending().model_dump(mode="json"))
    plan = RunPlan(root="support", agents={})
    with pytest.raises(ValidationError, match=NEWER):
        Checkpoint.model_validate(
            {"plan": plan.model_dump(mode="json"), "run_state": "", "gate": [{**record, NEWER: 1}]}
        )
    child = ChildPending(workflow_id="w", pending=[_pending("input")]).model_dump(mode="json")
    child["pending"][0]["question"][NEWER] = 1
    with pytest.raises(ValidationError, match=NEWER):
        ChildPending.model_validate(child)
    notice = ApprovalNotice(workflow_id="w", pending=_pending(), approve_command="x").model_dump(mode="json")
    notice["pending"][NEWER] = 1
    with pytest.raises(ValidationError, match=NEWER):
        ApprovalNotice.model_validate(notice)
    reply = ToolReply(text="", question=InputQuestion(message="?", question_sha256=SHA)).model_dump(mode="json")
    reply["question"][NEWER] = 1
    with pytest.raises(ValidationError, match=NEWER):
        ToolReply.model_validate(reply)


def test_a_strict_twin_is_its_view_so_the_run_replies_with_what_it_keeps() -> None:
    for strict, view in [
        (ApprovalRecord, ApprovalRecordView),
        (AuditEntry, AuditEntryView),
        (PendingApproval, PendingApprovalView),
        (InputQuestion, payloads.InputQuestionView),
        (Usage, payloads.UsageView),
    ]:
        assert issubclass(strict, view) and issubclass(strict, Wire), strict
        assert list(strict.model_fields) == list(view.model_fields), strict
        assert strict.model_config["extra"] == "forbid" and view.model_config["extra"] == "ignore"


def test_the_call_fields_are_declared_once() -> None:
    call = list(CallFields.model_fields)
    assert call == ["call_id", "agent", "server", "tool", "arguments", "arguments_sha256"]
    for model in (ApprovalRecordView, PendingApprovalView, PipelinePending):
        assert issubclass(model, CallFields), model
    # No other model of the contract declares them all again itself.
    for name in dir(payloads):
        model = getattr(payloads, name)
        if isinstance(model, type) and issubclass(model, BaseModel) and model is not CallFields:
            own = set(vars(model).get("__annotations__", {}))
            assert not set(call) <= own, name


def test_the_json_keeps_its_names_and_order() -> None:
    """Durable JSON: a shared base must not reorder what a model has always sent."""
    assert list(PendingApproval.model_fields)[:7] == [*CallFields.model_fields, "requested_at"]
    assert list(ApprovalRecord.model_fields)[:7] == [*CallFields.model_fields, "requested_at"]
    assert list(PipelinePending.model_fields)[:3] == ["step", "workflow_id", "call_id"]
    # An approval still has no `kind` or `question` on the wire; an input request has both.
    assert "kind" not in _pending().model_dump() and "question" not in _pending().model_dump()
    assert _pending("input").model_dump(mode="json")["question"]["message"] == "How many?"
