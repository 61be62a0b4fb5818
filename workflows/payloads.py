"""Everything that crosses the wire: workflow I/O, message payloads and activity I/O.

A two-sided contract. What comes in (workflow inputs, signals, updates, activity I/O) is a
`Wire` model that forbids unknown fields, so a typo is an error, not a silently ignored value.
What goes out to clients (query and update results, workflow results) is a `View` that ignores
fields it does not know, so an older client still reads a newer worker's reply. A model used both
ways is declared once as its view, and its strict twin subclasses it (a strict record *is* a view,
so the workflow replies with what it keeps). New fields always get defaults so older callers keep
working. The JSON of every model is the contract (docs/compatibility.md): names never change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

Policy = Literal["auto", "approve", "deny"]
Outcome = Literal["ok", "error", "outcome_unknown"]
AuditEvent = Literal[
    "requested",
    "approved",
    "rejected",
    "refused",
    "refusals_omitted",
    "timed_out",
    "escalated",
    "outcome",
    "input_requested",
    "answered",
]
# How a person answers a server's input request (the MCP spec's elicitation actions).
AnswerAction = Literal["accept", "decline", "cancel"]
RunStateName = Literal["starting", "running", "awaiting_approval", "completed", "failed", "cancelled"]
# How a run's requester is known. Only "claimed" so far: a client types it when it starts the run
# and nothing proves it (docs/identity.md, "The requester is claimed").
RequesterProof = Literal["claimed"]
PipelineState = Literal["starting", "running", "awaiting_approval", "completed", "failed", "cancelled"]
StepState = Literal["pending", "running", "awaiting_approval", "completed", "failed", "skipped", "cancelled"]


class Wire(BaseModel):
    """Base for what Airlock receives: strict about unknown fields, JSON-only values."""

    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """Base for what a client reads: fields it does not know (from a newer worker) are ignored."""

    model_config = ConfigDict(extra="ignore")


class CallFields(BaseModel):
    """The fields that name one gated tool call, declared once for every model that shows one."""

    call_id: str
    agent: str
    server: str
    tool: str
    arguments: dict[str, Any]
    # SHA-256 of the canonical JSON `arguments`: what a decision is bound to.
    arguments_sha256: str


# The JSON of a run's `context`, at most (it goes to the model with every turn's input).
MAX_CONTEXT_CHARS = 20_000


# --- AgentWorkflow ---------------------------------------------------------------------------


class AgentRequest(Wire):
    """Input of `AgentWorkflow`."""

    agent: str = Field(min_length=1, max_length=64)
    input: str = Field(min_length=1, max_length=100_000)
    requester: str | None = Field(default=None, max_length=200)
    # Facts from the caller (a ticket id, a customer); the model sees them with the input.
    context: dict[str, Any] = Field(default_factory=dict)
    # Set only by the workflow itself when it continues as new.
    checkpoint: Checkpoint | None = None

    @field_validator("context")
    @classmethod
    def _bounded_context(cls, context: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(context))
        if size > MAX_CONTEXT_CHARS:
            raise ValueError(f"context is {size} characters of JSON; at most {MAX_CONTEXT_CHARS}")
        return context

    def first_message(self) -> str:
        """What the model is first told: the input, then the context as JSON when there is one."""
        if not self.context:
            return self.input
        return f"{self.input}\n\nContext from the requester (JSON):\n{json.dumps(self.context, indent=2)}"


class UsageView(View):
    """Model usage summed over a run, as a client reads it."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class Usage(UsageView, Wire):
    """Model usage as the worker keeps it (strict: the model step's reply, a checkpoint)."""


class AuditEntryView(View):
    """One approval request, decision, refused attempt or outcome, in the order it happened."""

    at: datetime
    event: AuditEvent
    call_id: str
    agent: str | None = None
    server: str | None = None
    tool: str | None = None
    actor: str | None = None
    reason: str | None = None
    arguments_sha256: str | None = None
    # An edit: the hash of the arguments before it (`arguments_sha256` is after).
    edited_from_sha256: str | None = None
    outcome: Outcome | None = None
    # `signed:<signer>/<key id>` or `asserted`, for decisions.
    identity: str | None = None
    # `refusals_omitted`: how many refused attempts were counted but not listed one by one.
    count: int | None = None
    # Input requests: the hash of the question, and the answer's action and hash (`answered`).
    question_sha256: str | None = None
    action: AnswerAction | None = None
    answer_sha256: str | None = None
    # `requested`: who requested the run, and how that is known ("claimed").
    requester: str | None = None
    requester_proof: RequesterProof | None = None
    # The Cedar policy that decided the call (`@id (file:line)` or `file:line`); None: `[tools]` did.
    rule: str | None = None


class AuditEntry(AuditEntryView, Wire):
    """An audit entry as the run keeps it (strict: it comes back in with a checkpoint)."""

    @classmethod
    def of_call(cls, record: ApprovalRecord, event: AuditEvent, at: datetime, **details: Any) -> AuditEntry:
        """An entry about `record`'s call (its id, agent, server, tool, arguments hash), with `details`."""
        return cls(
            at=at,
            event=event,
            call_id=record.call_id,
            agent=record.agent,
            server=record.server,
            tool=record.tool,
            arguments_sha256=record.arguments_sha256,
            **details,
        )


class ApprovalRecordView(CallFields, View):
    """The decision on one gated call and what came of it; part of the run's result."""

    requested_at: datetime
    deadline: datetime | None = None
    decision: Literal["approved", "rejected", "timed_out"] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    outcome: Outcome | None = None
    # Distinct people who approved the arguments as they are now (a quorum needs `required`).
    approved_by: list[str] = Field(default_factory=list)
    approvals_needed: int = 1
    identity: str | None = None
    # Set when an approver edited the call: the hash of the arguments the model asked for.
    requested_sha256: str | None = None
    escalated_at: datetime | None = None
    # The signed approvals that count (compact JWS), reset by an edit but for the editor's own:
    # the worker checks them again where the call runs (see activities/authority.py).
    proofs: list[str] = Field(default_factory=list)
    # A Cedar policy decided the call: who may approve it (None: the agent's approvers), and the rule.
    approvers: list[str] | None = None
    rule: str | None = None


class ApprovalRecord(ApprovalRecordView, Wire):
    """A gated call's record as the run keeps it (strict: it comes back in with a checkpoint)."""


class AgentResult(View):
    """Result of `AgentWorkflow`."""

    status: Literal["completed"] = "completed"
    output: str
    # A Sequence, not a list: the run passes the records it keeps (strict twins of the view).
    approvals: Sequence[ApprovalRecordView] = Field(default_factory=list)
    tool_calls: int = 0
    usage: UsageView = Field(default_factory=UsageView)


class Checkpoint(Wire):
    """What a run carries into its next history when it continues as new."""

    plan: RunPlan
    run_state: str
    gate: list[ApprovalRecord] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)
    tool_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    turn: int = 0
    # Ids of signatures already used in this run: each is good for one decision only.
    used_tokens: list[str] = Field(default_factory=list)
    # The newest run events, so the stream's offsets go on in the next run (workflows/events.py).
    events: RunEventLog | None = None


# --- Approval messages -----------------------------------------------------------------------

SHA256_HEX = r"^[0-9a-f]{64}$"
# Bounds on what a sender can put into a decision: enough for any real use, never a flood.
MAX_ID = 200
MAX_TEXT = 2_000
MAX_SIGNATURE = 4_000


class Decision(Wire):
    """What every decision carries: the call, who decides, the hash they saw, and the proof."""

    call_id: str = Field(min_length=1, max_length=MAX_ID)
    approver: str = Field(min_length=1, max_length=MAX_ID)
    arguments_sha256: str = Field(pattern=SHA256_HEX)
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE)


class Approve(Decision):
    """Payload of the `approve` signal; `arguments` edits the call (it then runs with those)."""

    comment: str = Field(default="", max_length=MAX_TEXT)
    arguments: dict[str, Any] | None = None


class Reject(Decision):
    """Payload of the `reject` signal."""

    reason: str = Field(default="", max_length=MAX_TEXT)


class Review(Decision):
    """Payload of the `review` update: one decision, validated before it is recorded."""

    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=MAX_TEXT)
    arguments: dict[str, Any] | None = None


class InputQuestionView(View):
    """A server's input request (elicitation) as people see it: a form, or a URL to visit."""

    mode: Literal["form", "url"] = "form"
    message: str
    # Form mode: the spec's flat object of primitive properties.
    requested_schema: dict[str, Any] | None = None
    url: str | None = None
    elicitation_id: str | None = None
    # What an answer is bound to (SHA-256 of the canonical mode, message, schema and URL).
    question_sha256: str = Field(pattern=SHA256_HEX)


class InputQuestion(InputQuestionView, Wire):
    """An input request as the worker passes it on (strict: a tool step's reply, a notice)."""


class Answer(Wire):
    """Payload of the `answer` signal and update: one person's answer to one input request."""

    call_id: str = Field(min_length=1, max_length=MAX_ID)
    approver: str = Field(min_length=1, max_length=MAX_ID)
    question_sha256: str = Field(pattern=SHA256_HEX)
    action: AnswerAction
    # accept (form mode): the values, a flat object matching the requested schema.
    content: dict[str, Any] | None = None
    signature: str | None = Field(default=None, max_length=MAX_SIGNATURE)


class PendingApprovalView(CallFields, View):
    """One gated call waiting for a decision (or, `kind` "input", an answer), as `pending_approvals` lists it."""

    requested_at: datetime
    deadline: datetime | None
    approvals_needed: int = 1
    approved_by: list[str] = Field(default_factory=list)
    requester: str | None = None
    # How the requester is known: "claimed", typed by whoever started the run, proven by nothing.
    requester_proof: RequesterProof = "claimed"
    # The run that shows the call: a signature binds it (None from a worker before signatures did).
    run_id: str | None = None
    # "input": the call is running and its server asks a person for input (`question`); answer it
    # with the `answer` signal or update (`airlock answer`), not approve/reject.
    kind: Literal["approval", "input"] = "approval"
    question: InputQuestionView | None = None

    @model_serializer(mode="wrap")
    def _approval_shape(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_input_fields(self.kind, handler(self))


class PendingApproval(PendingApprovalView, Wire):
    """A pending call as the worker passes it on (strict: a child's `child_pending`, a notice)."""

    question: InputQuestion | None = None


def _without_input_fields(kind: str, data: Any) -> Any:
    """An approval keeps the shape it had before input requests existed: no `kind`, no `question`."""
    if kind == "approval" and isinstance(data, dict):
        for name in ("kind", "question", "answer_command"):
            data.pop(name, None)
    return data


class ConversationItem(View):
    """One item of a run's conversation as `call_details` shows it: its kind, role and text (cut)."""

    kind: str
    role: str | None = None
    text: str


class CallDetails(View):
    """Answer of the `call_details` query: one pending call and what its approvers need to judge it."""

    pending: PendingApprovalView
    description: str
    input_schema: dict[str, Any]
    # Who may decide it now (groups expanded, escalation included); None: anyone with a valid identity.
    deciders: list[str] | None = None
    allow_self_approval: bool = False
    # The last items of the conversation when the run paused, each cut; older ones are only counted.
    conversation: list[ConversationItem] = Field(default_factory=list)
    conversation_omitted: int = 0
    # The tool is gated because its definition no longer matches its pin: what changed (a diff).
    pin_change: str | None = None


class InFlightCall(View):
    """A tool call whose activity is running; its progress is that activity's heartbeat (describe)."""

    call_id: str
    server: str
    tool: str
    since: datetime


class RunStatus(View):
    """Answer of the `status` query."""

    state: RunStateName
    agent: str
    turn: int
    tool_calls: int
    pending: int = 0
    # Who requested the run, and how that is known ("claimed": typed by whoever started it).
    requester: str | None = None
    requester_proof: RequesterProof = "claimed"
    # Kept in workflow memory only: progress itself never enters history (see activities/progress.py).
    in_flight: list[InFlightCall] = Field(default_factory=list)


# --- Run events (the run's Workflow Stream, workflows/events.py) -------------------------------

RunEventKind = Literal[
    "state",
    "model_turn",
    "tool_requested",
    "tool_policy",
    "tool_started",
    "tool_finished",
    "approval_requested",
    "approval_decided",
    "approval_escalated",
    "approval_timed_out",
    "input_requested",
    "input_answered",
    "input_escalated",
    "input_timed_out",
    "completed",
    "failed",
]


class RunEventView(View):
    """One thing a run did, as a subscriber reads it: small, typed, and free of secrets.

    `seq` is the event's offset in the run's stream (it goes on across continue-as-new): a reader
    that reconnects asks for the events from its last `seq` + 1. Only the fields of its `kind` are
    set; arguments are never shown (their hash is), a tool's result only as its start, scrubbed by
    the worker before it reached the run. `kind` is a plain string here: a newer worker may add kinds.
    """

    seq: int
    at: datetime
    kind: str
    agent: str | None = None
    # "state": the run's new state; "completed"/"failed" carry the last one too.
    state: RunStateName | None = None
    # "model_turn": the turn's number and the text the model wrote (cut); "tool_finished": the
    # start of the result; "completed": the final output (cut); "failed": what went wrong.
    turn: int | None = None
    text: str | None = None
    call_id: str | None = None
    server: str | None = None
    tool: str | None = None
    arguments_sha256: str | None = None
    # "tool_policy": how the call is ruled, and the Cedar rule that ruled it, if one did.
    policy: Policy | None = None
    rule: str | None = None
    outcome: Outcome | None = None
    # "approval_decided": approved or rejected, by whom, how they were known, why.
    decision: Literal["approved", "rejected"] | None = None
    actor: str | None = None
    identity: str | None = None
    reason: str | None = None
    # "input_answered": the answer's action (accept, decline, cancel).
    action: AnswerAction | None = None
    # "failed": the failure's type (an Airlock error name).
    error: str | None = None


class RunEvent(RunEventView, Wire):
    """A run event as the run publishes it (strict: it comes back in with a checkpoint)."""

    kind: RunEventKind


class RunEventLog(Wire):
    """The newest events a run carries into its next history, and the offset of the first."""

    base: int = 0
    events: list[RunEvent] = Field(default_factory=list)


class RunEventsPage(View):
    """Answer of the `events_after` query: the kept events from an offset on, and where to go on from."""

    events: list[RunEventView] = Field(default_factory=list)
    # The offset to ask for next; the first kept one, when older events were dropped (`truncated`).
    next_seq: int = 0
    first_kept: int = 0
    truncated: bool = False


# --- PipelineWorkflow ------------------------------------------------------------------------

STEP_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class StepCondition(Wire):
    """`when`: run a step only if an earlier step's output or state passes exactly one test."""

    step: str
    contains: str | None = None
    not_contains: str | None = None
    equals: str | None = None
    status: Literal["completed", "failed", "skipped"] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> StepCondition:
        tests = [self.contains, self.not_contains, self.equals, self.status]
        if sum(t is not None for t in tests) != 1:
            raise ValueError("give exactly one of 'contains', 'not_contains', 'equals', 'status'")
        return self


class PipelineStep(Wire):
    """One step of a pipeline: an agent, its templated input, and what a failure does."""

    name: str = Field(pattern=STEP_NAME)
    agent: str = Field(min_length=1, max_length=64)
    input: str = Field(default="{{ input }}", min_length=1, max_length=100_000)
    on_failure: Literal["stop", "continue"] = "stop"
    when: StepCondition | None = None


class PipelineDefinition(Wire):
    """A pipeline: steps run in order, each a child `AgentWorkflow`."""

    name: str = Field(default="inline", pattern=STEP_NAME)
    description: str = ""
    steps: list[PipelineStep] = Field(min_length=1, max_length=20)
    # Set by the worker's `pipeline` activity, never by a caller: who the commands in `status`
    # sign as (`--dev`: alice with her dev key); None: `--as '<you>'`.
    command_approver: str | None = None
    command_key: str | None = None


class PipelineRequest(Wire):
    """Input of `PipelineWorkflow`: a declared pipeline by name, or inline steps."""

    pipeline: str | None = Field(default=None, max_length=64)
    steps: list[PipelineStep] | None = Field(default=None, min_length=1, max_length=20)
    input: str = Field(default="", max_length=100_000)
    requester: str | None = Field(default=None, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> PipelineRequest:
        if (self.pipeline is None) == (self.steps is None):
            raise ValueError("give exactly one of 'pipeline' (a declared name) and 'steps' (inline)")
        return self


class StepResult(View):
    """Where one step is, and what it produced."""

    name: str
    agent: str
    workflow_id: str
    status: StepState = "pending"
    output: str = ""
    error: str | None = None
    # A Sequence, not a list: the run passes the records it keeps (strict twins of the view).
    approvals: Sequence[ApprovalRecordView] = Field(default_factory=list)
    tool_calls: int = 0


class PipelineResult(View):
    """Result of `PipelineWorkflow`: the last completed step's output and every step."""

    status: Literal["completed"] = "completed"
    pipeline: str
    output: str
    steps: list[StepResult]


class _InChild(BaseModel):
    """Where a pipeline's pending call waits: its step and that step's child run."""

    step: str
    workflow_id: str


# `_InChild` is listed after `CallFields` so that its fields come first, as they always have.
class PipelinePending(CallFields, _InChild, View):
    """An approval waiting in one of the pipeline's child runs, with the commands that decide it."""

    approve_command: str
    reject_command: str = ""
    # "input": the child's server asks for input; `answer_command` answers it (approve/reject are empty).
    kind: Literal["approval", "input"] = "approval"
    question: InputQuestionView | None = None
    answer_command: str = ""

    @model_serializer(mode="wrap")
    def _approval_shape(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_input_fields(self.kind, handler(self))


class PipelineStatus(View):
    """Answer of the pipeline's `status` query."""

    state: PipelineState
    pipeline: str
    current: str | None
    steps: list[StepResult]
    pending: list[PipelinePending] = Field(default_factory=list)


class ChildPending(Wire):
    """Payload of `child_pending`: a child run tells its parent which approvals it waits for."""

    workflow_id: str
    pending: list[PendingApproval]


# --- Identity ----------------------------------------------------------------------------------


class Principal(Wire):
    """A person or service of `approvers.toml`: its public keys, and whom a service may vouch for."""

    keys: list[str] = Field(min_length=1, max_length=20)
    may_assert: list[str] = Field(default_factory=list)


class Directory(Wire):
    """`approvers.toml`: who may sign decisions, with which keys, and the groups they form."""

    people: dict[str, Principal] = Field(default_factory=dict)
    services: dict[str, Principal] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)


# --- Activity I/O ----------------------------------------------------------------------------


class ApprovalConfig(Wire):
    """The `[approval]` table of an agent."""

    approvers: list[str] = Field(default_factory=list)
    required: int = 1
    timeout_seconds: float = 24 * 3600
    on_timeout: Literal["reject", "fail"] = "reject"
    allow_self_approval: bool = False
    escalate_after_seconds: float | None = None
    escalate_to: list[str] = Field(default_factory=list)


class ToolPlan(Wire):
    """One MCP tool as an agent sees it: schema, resolved policy and retry safety."""

    name: str
    server: str
    description: str
    input_schema: dict[str, Any]
    policy: Literal["auto", "approve"]
    read_only: bool
    idempotent: bool
    timeout_seconds: float = 30.0
    # The server is `long_running`: reads too run as heartbeating activities (progress, prompt cancel).
    long_running: bool = False
    # The worker's `AIRLOCK_MAX_RESULT_BYTES`: the most a reply's text may take (workflows/task_room.py).
    max_result_bytes: int = 64_000
    # Cedar policies on the worker may decide this tool's calls by their arguments: each call asks
    # the `airlock.policy_rule` step first (False: the call goes as `policy` says, as before).
    rules: bool = False
    # sha256 of the tool's definition as listed for this plan (activities/pins.py); every call
    # carries it, and the worker sends none once the definition it sees differs.
    definition_sha256: str | None = None
    # "changed/new since pinned" and the diff, for a tool gated because it no longer matches its pin.
    pin_change: str | None = None


class AgentPlan(Wire):
    """A declared agent resolved against live MCP servers, fixed for the whole run."""

    name: str
    model: str
    instructions: str
    handoffs: list[str] = Field(default_factory=list)
    handoff_description: str = ""
    tools: list[ToolPlan] = Field(default_factory=list)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    max_turns: int = 20
    max_tool_calls: int = 50
    max_total_tokens: int = 1_000_000
    # `model_takes_images` in the agent file: tool images are passed to the model, not only named.
    model_takes_images: bool = False


class RunPlan(Wire):
    """Result of the `prepare` activity: the root agent and every agent it may hand off to."""

    root: str
    agents: dict[str, AgentPlan]
    model_timeout_seconds: float = 120.0
    notify_approvals: bool = False
    max_history_events: int = 10_000
    # None: no approvers file, decisions are asserted.
    directory: Directory | None = None
    # Who the commands the run prints sign as (`--dev`: alice with her dev key); None: `<you>`.
    command_approver: str | None = None
    command_key: str | None = None


class PrepareRequest(Wire):
    """Input of the `prepare` activity."""

    agent: str


class PipelineLookup(Wire):
    """Input of the `pipeline` activity: a declared pipeline's name, or inline steps to check."""

    name: str | None = None
    definition: PipelineDefinition | None = None


# Model settings the runner may change between turns and the model activity passes on; every
# other setting stays at the provider's default.
FORWARDED_MODEL_SETTINGS = ("temperature", "top_p", "tool_choice", "parallel_tool_calls", "max_tokens")


class ToolSpec(Wire):
    """A function tool as the model is shown it; its calls run in the workflow, never in the model step."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False


class HandoffSpec(Wire):
    """A handoff to another agent, as the model is shown it."""

    tool_name: str
    tool_description: str
    input_json_schema: dict[str, Any]
    agent_name: str
    strict: bool = True


class ModelCall(Wire):
    """Input of the `model` activity: one model turn, provider-neutral."""

    agent: str
    model: str
    instructions: str | None
    input: list[dict[str, Any]]
    tools: list[ToolSpec] = Field(default_factory=list)
    handoffs: list[HandoffSpec] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


class ModelReply(Wire):
    """Output of the `model` activity, in OpenAI Responses output-item format."""

    output: list[dict[str, Any]]
    usage: Usage = Field(default_factory=Usage)
    response_id: str | None = None


class GivenAnswer(Wire):
    """An answer people gave to one of the call's input requests, sent with the call again."""

    question_sha256: str = Field(pattern=SHA256_HEX)
    action: AnswerAction
    content: dict[str, Any] | None = None
    # The signed answers the run counted for it (a gated call's quorum): the worker checks them
    # again before it sends the call (activities/authority.py). Empty without an approvers file.
    signatures: list[str] = Field(default_factory=list, max_length=100)


class ToolCall(Wire):
    """Input of the `read` and `write` activities."""

    agent: str
    server: str
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str | None = None
    # The model's call id, so a pending activity's heartbeat names the call it belongs to.
    call_id: str | None = None
    # The agent's model takes images: return the result's images too (within max_result_bytes).
    images: bool = False
    # Answers to the server's input requests, in the order they were given.
    answers: list[GivenAnswer] = Field(default_factory=list)
    # The signed approvals of a gated call, and who requested the run: the worker checks both
    # against its own configuration before it sends anything (activities/authority.py).
    authority: list[str] = Field(default_factory=list)
    requester: str | None = None
    # The definition digest of the plan the call (and its approval) was made with (ToolPlan).
    definition_sha256: str | None = None


class RuleRequest(Wire):
    """Input of the `policy_rule` step: one call, as the worker's Cedar policies judge it."""

    agent: str
    server: str
    tool: str
    arguments: dict[str, Any]
    requester: str | None = None


class Ruling(Wire):
    """What the policies decided for one call, and which rule decided (None: the `[tools]` rules)."""

    policy: Policy
    rule: str | None = None
    # `approve`: distinct approvals needed and who may give them (None: the agent's `[approval]`).
    approvals: int | None = None
    approvers: list[str] | None = None
    # The rule's `@reason`, or why the call could not be judged.
    reason: str | None = None


class ToolImage(Wire):
    """An image from a tool result, passed to a model that takes images (base64, as the server sent it)."""

    mime_type: str
    data: str


class ToolReply(Wire):
    """Output of a tool activity: the text the model will see and how the call ended."""

    text: str
    # "input_required": the server asked for input nobody had given (`question`); it was told
    # `cancel`, so it did not act, and the call is sent again once a person answers.
    outcome: Outcome | Literal["input_required"] = "ok"
    cut_bytes: int = 0
    images: list[ToolImage] = Field(default_factory=list)
    question: InputQuestion | None = None


class ApprovalNotice(Wire):
    """Input of the `notify` activity: a pending approval and the commands that decide it."""

    workflow_id: str
    pending: PendingApproval
    approve_command: str
    reject_command: str = ""
    # Sent again when the call escalates to more approvers.
    escalated: bool = False
    # An input request (`pending.kind` "input"): the command that answers it; approve/reject are empty.
    answer_command: str = ""


Checkpoint.model_rebuild()
AgentRequest.model_rebuild()
