"""The activities a run schedules: prepare the plan, call the model, call a tool, notify."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

import httpx
import openai
import structlog
from mcp.shared.tool_name_validation import TOOL_NAME_REGEX
from mcp_types import CallToolResult
from pydantic import ValidationError
from temporalio import activity

from activities import policy
from activities.approvers import ApproversFile
from activities.authority import CallAuthority
from activities.catalog import Catalog
from activities.models import ModelBackend, provider_failure
from activities.pins import PinFile, Verdict, tool_digest
from activities.progress import CallProgress
from mcp_servers.client import elicitation
from mcp_servers.client.errors import BreakerRefusedError, RequestNotSentError, ServerFailedError
from mcp_servers.client.registry import McpPool
from mcp_servers.client.results import Mismatched, render
from mcp_servers.client.results import result_text as result_text  # re-exported for callers of this module
from mcp_servers.client.tasks import WHY as TASKS_WHY
from mcp_servers.client.tasks import requires_tasks
from runtime.metrics import tool_changed
from runtime.redaction import Redactor
from workflows import model_output, steps
from workflows.commands import YOU, Signer
from workflows.errors import (
    CircuitOpenError,
    InvalidInputError,
    ModelError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    ServerUnreachableError,
    ToolConflictError,
    ToolNotSentError,
    UnknownAgentError,
    WebhookFailedError,
)
from workflows.limits import (
    MAX_MODEL_REPLY_BYTES,
    MAX_PLAN_BYTES,
    MAX_TOOL_CALLS_PER_REPLY,
    MAX_TOOL_DESCRIPTION_BYTES,
    MAX_TOOL_SCHEMA_BYTES,
    MAX_TOOLS_PER_SERVER,
    TEMPORAL_PAYLOAD_BYTES,
)
from workflows.payloads import (
    AgentPlan,
    ApprovalNotice,
    Directory,
    InputQuestion,
    ModelCall,
    ModelReply,
    PipelineDefinition,
    PipelineLookup,
    PrepareRequest,
    RuleRequest,
    Ruling,
    RunPlan,
    ToolCall,
    ToolImage,
    ToolPlan,
    ToolReply,
)
from workflows.templates import problems
from workflows.visible import hides_text, visible

log = structlog.get_logger(__name__)

IDEMPOTENCY_META_KEY = "airlock/idempotency_key"
F = TypeVar("F", bound=Callable[..., Any])


def implements(declaration: Callable[..., Any]) -> Callable[[F], F]:
    """Make a method the activity that `declaration` (workflows/steps.py) names; the name is written once."""
    name = activity._Definition.must_from_callable(declaration).name
    return activity.defn(name=name)


MAX_LOGGED_NAME = 80
# (server, tool) pairs remembered as logged; past this a worker stops remembering (and logging) more.
MAX_HIDDEN_LOGGED = 10_000


def cap(text: str, limit: int, *, what: str = "result") -> tuple[str, int]:
    """Cut `text` to at most `limit` UTF-8 bytes, with a visible marker saying how much went."""
    data = text.encode()
    if len(data) <= limit:
        return text, 0
    cut = len(data) - limit
    kept = data[:limit].decode(errors="ignore")
    return f"{kept}\n[airlock: {what} cut, {cut} of {len(data)} bytes not shown]", cut


class AirlockActivities:
    """Activity implementations bound to one worker's catalog, MCP pool and model backend."""

    def __init__(
        self,
        catalog: Catalog,
        pool: McpPool,
        model: ModelBackend,
        *,
        max_result_bytes: int,
        model_timeout_seconds: float = 120.0,
        webhook_url: str | None = None,
        max_history_events: int = 10_000,
        pipelines: dict[str, PipelineDefinition] | None = None,
        approvers: ApproversFile | None = None,
        redactor: Redactor | None = None,
        printed_signer: Signer = YOU,
        pins: PinFile | None = None,
    ) -> None:
        self.catalog = catalog
        # Pinned tool definitions: a changed or new tool is hidden or gated (activities/pins.py).
        self.pins = pins
        # Who the commands runs print sign as: alice with her dev key on `--dev`'s stack.
        self.printed_signer = printed_signer
        self.approvers = approvers
        # Checks every read and write against this worker's own configuration before it is sent.
        self.authority = CallAuthority(catalog, pool, approvers, pins=pins, on_change=self._tool_changed)
        # Scrubs tool results here and, through the worker's interceptor, every activity failure.
        self.redactor = redactor or Redactor()
        self.pipelines = pipelines or {}
        self.pool = pool
        self.model_backend = model
        self.max_result_bytes = max_result_bytes
        self.model_timeout_seconds = model_timeout_seconds
        self.webhook_url = webhook_url
        self.max_history_events = max_history_events
        # (server, tool) pairs already logged as hidden, so a worker says it once, not every run.
        self._hidden_logged: set[tuple[str, str]] = set()

    @implements(steps.prepare)
    async def prepare(self, request: PrepareRequest) -> RunPlan:
        """Resolve the agent, the agents it may hand off to, and each one's tools and policies."""
        if self.catalog.get(request.agent) is None:
            known = ", ".join(sorted(self.catalog.agents))
            raise UnknownAgentError(f"unknown agent {request.agent!r} (known: {known})")
        plans: dict[str, AgentPlan] = {}
        todo = [request.agent]
        while todo:
            name = todo.pop()
            if name in plans:
                continue
            plans[name] = await self._plan(name)
            todo.extend(plans[name].handoffs)
        plan = RunPlan(
            root=request.agent,
            agents=plans,
            model_timeout_seconds=self.model_timeout_seconds,
            notify_approvals=self.webhook_url is not None,
            max_history_events=self.max_history_events,
            directory=self.approvers.current() if self.approvers is not None else None,
            **self._command_signer(),
        )
        # Recorded once and carried by every continue-as-new: measured here, before it is recorded.
        size = len(plan.model_dump_json().encode())
        if size > MAX_PLAN_BYTES:
            raise PayloadTooLargeError(
                f"agent {request.agent!r}: its plan (instructions, tools, schemas) is {size} bytes, over the "
                f"{MAX_PLAN_BYTES}-byte plan budget (Temporal's payload limit is {TEMPORAL_PAYLOAD_BYTES} bytes); "
                "deny the tools it does not need in [tools]"
            )
        return plan

    @implements(steps.current_approvers)
    async def current_approvers(self) -> Directory | None:
        """The approvers file as it is now (None: decisions are asserted)."""
        return self.approvers.current() if self.approvers is not None else None

    @implements(steps.checkpoint_origin)
    async def checkpoint_origin(self) -> None:
        """Prove the running run was continued as new by Airlock itself (`ForgedCheckpointError` if not)."""
        await self.authority.check_origin()

    @implements(steps.pipeline)
    async def pipeline(self, lookup: PipelineLookup) -> PipelineDefinition:
        """A declared pipeline by name, or inline steps checked against the agent catalog."""
        if lookup.definition is None:
            found = self.pipelines.get(lookup.name or "")
            if found is None:
                known = ", ".join(sorted(self.pipelines)) or "none"
                raise InvalidInputError(f"unknown pipeline {lookup.name!r} (known: {known})")
            return found.model_copy(update=self._command_signer())
        mistakes = problems(lookup.definition, self.catalog.agents)
        if mistakes:
            raise InvalidInputError(
                "invalid PipelineWorkflow input: " + "; ".join(f"{key}: {message}" for key, message in mistakes)
            )
        return lookup.definition.model_copy(update=self._command_signer())

    def _command_signer(self) -> dict[str, str | None]:
        if self.printed_signer == YOU:
            return {"command_approver": None, "command_key": None}
        return {"command_approver": self.printed_signer.approver, "command_key": self.printed_signer.key}

    async def _plan(self, name: str) -> AgentPlan:
        spec = self.catalog.agents[name]
        tools: list[ToolPlan] = []
        offered_by: dict[str, str] = {}
        # Tools each server gives this agent, and those hidden for being over a bound.
        kept: dict[str, int] = {}
        hidden: dict[str, int] = {}
        for server in spec.mcp_servers:
            config = self.pool.servers[server]
            try:
                listed = await self.pool.connection(server).list_tools()
            except ServerFailedError as err:
                raise ServerUnreachableError(str(err)) from err
            for tool in listed:
                if not TOOL_NAME_REGEX.fullmatch(tool.name):
                    # A hostile server picks the name: logs get a bounded prefix of it.
                    log.warning(
                        "mcp_tool_name_invalid",
                        agent=name,
                        server=server,
                        tool=self.redactor.scrub(tool.name)[:MAX_LOGGED_NAME],
                        length=len(tool.name),
                    )
                    continue
                if self.redactor.scrub(tool.name) != tool.name:
                    # A name is what the model calls and people approve: one holding a secret is dropped.
                    log.warning("mcp_tool_name_secret", agent=name, server=server)
                    continue
                if requires_tasks(tool):
                    if (server, tool.name) not in self._hidden_logged:
                        self._hidden_logged.add((server, tool.name))
                        log.warning("mcp_tool_hidden", server=server, tool=tool.name, reason=TASKS_WHY)
                    continue
                hints = tool.annotations
                read_only = hints.read_only_hint if hints is not None else None
                idempotent = hints.idempotent_hint if hints is not None else None
                decided = policy.resolve(
                    tool.name, server, spec.tools, trusted=config.trusted, read_only_hint=read_only
                )
                if decided == "deny":
                    continue
                pin_change: str | None = None
                if self.pins is not None:
                    mode, verdict = self.pins.check(server, config, tool)
                    if verdict is not None and verdict.status != "pinned":
                        self._tool_changed(server, tool.name, verdict, mode=mode, agent=name)
                        if mode == "hide":
                            continue
                        # Offered, but not as pinned: every call waits for a person who sees the diff.
                        decided = "approve"
                        pin_change = self.redactor.scrub(verdict.note)
                too_big = self._over_bounds(server, tool.name, tool.input_schema, kept.get(server, 0))
                if too_big:
                    hidden[server] = hidden.get(server, 0) + 1
                    continue
                kept[server] = kept.get(server, 0) + 1
                # The model calls a tool by name alone: with two servers offering one name, the
                # gate and the call could each pick a different server.
                if tool.name in offered_by:
                    raise ToolConflictError(
                        f"agent {name!r}: servers {offered_by[tool.name]!r} and {server!r} both offer a tool "
                        f"named {tool.name!r}; deny it on one of them in [tools] or drop one server"
                    )
                offered_by[tool.name] = server
                tools.append(
                    ToolPlan(
                        name=tool.name,
                        server=server,
                        # A server's own description reaches the model and the history too.
                        description=self.redactor.scrub(tool.description or ""),
                        # So does its schema: every string in it (keys, titles, enums, defaults).
                        input_schema=self.redactor.scrub_json(tool.input_schema),
                        policy=decided,
                        read_only=config.trusted and read_only is True,
                        idempotent=policy.retry_safe(
                            trusted=config.trusted,
                            idempotent_hint=idempotent,
                            read_only_hint=read_only,
                            server_honours_keys=config.idempotency_keys,
                        ),
                        timeout_seconds=config.call_deadline_seconds,
                        long_running=config.long_running,
                        max_result_bytes=self.max_result_bytes,
                        definition_sha256=tool_digest(tool),
                        pin_change=pin_change,
                        # A tool changed since pinned waits for a person whatever a policy says.
                        rules=pin_change is None and bool(self.catalog.rules.applicable(name, server, tool.name)),
                    )
                )
        for server, count in hidden.items():
            log.warning("mcp_tools_over_bounds", agent=name, server=server, hidden=count, kept=kept.get(server, 0))
        for planned in tools:
            planned.description = self._bounded_description(planned.server, planned.name, planned.description)
        return AgentPlan(
            name=spec.name,
            model=spec.model,
            instructions=spec.instructions,
            handoffs=spec.handoffs,
            handoff_description=spec.handoff_description,
            tools=tools,
            approval=spec.approval_config(),
            max_turns=spec.max_turns,
            max_tool_calls=spec.max_tool_calls,
            max_total_tokens=spec.max_total_tokens,
            model_takes_images=spec.model_takes_images,
        )

    def _tool_changed(self, server: str, tool: str, verdict: Verdict, *, mode: str, agent: str | None = None) -> None:
        """Log `mcp_tool_changed` and count it, once per definition this worker meets (bounded)."""
        key = (server, f"{tool}@{verdict.sha256}")
        if key in self._hidden_logged or len(self._hidden_logged) >= MAX_HIDDEN_LOGGED:
            return
        self._hidden_logged.add(key)
        log.warning(
            "mcp_tool_changed",
            agent=agent,
            server=server,
            tool=tool,
            status=verdict.status,
            pins=mode,
            sha256=verdict.sha256,
            diff=self.redactor.scrub(verdict.diff),
        )
        tool_changed(server, verdict.status)

    def _over_bounds(self, server: str, tool: str, schema: dict[str, Any], kept: int) -> bool:
        """Whether a listed tool is hidden for its schema's size or its server's tool count.

        A schema cannot be cut and stay a schema, so a tool whose schema is too big is hidden.
        """
        if kept >= MAX_TOOLS_PER_SERVER:
            return True  # one line per server says how many (`mcp_tools_over_bounds`)
        size = len(json.dumps(schema).encode())
        if size <= MAX_TOOL_SCHEMA_BYTES:
            return False
        why = f"its input schema is {size} bytes, over {MAX_TOOL_SCHEMA_BYTES}"
        if (server, tool) not in self._hidden_logged and len(self._hidden_logged) < MAX_HIDDEN_LOGGED:
            self._hidden_logged.add((server, tool))
            log.warning("mcp_tool_hidden", server=server, tool=tool, reason=why)
        return True

    def _bounded_description(self, server: str, tool: str, description: str) -> str:
        """A description cut to `MAX_TOOL_DESCRIPTION_BYTES` with a marker: the tool stays usable.

        Cut after scrubbing, so a secret across the cut is never half shown.
        """
        text, cut_bytes = cap(description, MAX_TOOL_DESCRIPTION_BYTES, what="description")
        if cut_bytes and (server, tool) not in self._hidden_logged and len(self._hidden_logged) < MAX_HIDDEN_LOGGED:
            self._hidden_logged.add((server, tool))
            log.warning("mcp_tool_description_cut", server=server, tool=tool, cut_bytes=cut_bytes)
        return text

    @implements(steps.model)
    async def model(self, call: ModelCall) -> ModelReply:
        """One model turn; a reply the Agents SDK could not rebuild is a permanent `ModelError`.

        It is checked here, before it is recorded: checked in the workflow, a malformed item
        would fail every workflow task that replays it.
        """
        try:
            reply = await self.model_backend.respond(call)
        except openai.APIError as err:
            raise provider_failure(err) from err
        except ValidationError as err:
            # The SDK could not parse the provider's answer (an `output` that is not a list).
            raise ModelError(f"the model's reply is malformed: {model_output.reason(err)}") from err
        calls = model_output.tool_calls(reply.output)
        if calls > MAX_TOOL_CALLS_PER_REPLY:
            # Rebuilt in the workflow, so many calls would outlast the deadlock timeout of every task.
            raise ModelError(
                f"the model's reply has {calls} tool calls, over the limit of {MAX_TOOL_CALLS_PER_REPLY} "
                "tool calls in one reply"
            )
        reply.output = model_output.only_json(reply.output)
        problem = model_output.problem(reply.output)
        if problem is not None:
            raise ModelError(f"the model's reply is malformed: {problem}")
        size = len(reply.model_dump_json().encode())
        if size > MAX_MODEL_REPLY_BYTES:
            # Recorded as it is, it would fail the workflow task on Temporal's payload limit, forever.
            raise ModelError(
                f"the model's reply is {size} bytes, over the {MAX_MODEL_REPLY_BYTES}-byte limit for one reply "
                f"(Temporal's payload limit is {TEMPORAL_PAYLOAD_BYTES} bytes)"
            )
        return reply

    @implements(steps.read)
    async def read(self, call: ToolCall) -> ToolReply:
        """A read-only tool call: safe to retry, so a broken connection is a retryable failure.

        Run as a local activity it cannot heartbeat, so it asks for progress only when it runs as
        an ordinary activity (a server declared `long_running`).
        """
        await self.authority.check_call(call, write=False)
        asking = _round(call)
        try:
            async with self._progress(call) as progress:
                result = await self.pool.connection(call.server).call_tool(
                    call.tool,
                    call.arguments,
                    None,
                    progress=progress,
                    asking=asking,
                )
        except BreakerRefusedError as err:
            # Retrying against an open circuit only burns the retry budget: tell the model now.
            raise CircuitOpenError(f"MCP server {call.server!r}: {err}", non_retryable=True) from err
        except ServerFailedError as err:
            raise ServerUnreachableError(str(err)) from err
        return self._input_reply(call, asking) or self._reply(call, result)

    @implements(steps.write)
    async def write(self, call: ToolCall) -> ToolReply:
        """A write tool call carrying its idempotency key.

        A refused or failed connection means nothing was sent (`ToolNotSent`, always safe to
        resend). A failure after sending is `OutcomeUnknown`: it is resent only when the tool is
        idempotent (the workflow's retry policy decides).
        """
        await self.authority.check_call(call, write=True)
        connection = self.pool.connection(call.server)
        meta = {IDEMPOTENCY_META_KEY: call.idempotency_key} if call.idempotency_key else None
        asking = _round(call)
        try:
            async with self._progress(call) as progress:
                result = await connection.call_tool(call.tool, call.arguments, meta, progress=progress, asking=asking)
        except (BreakerRefusedError, RequestNotSentError) as err:
            raise ToolNotSentError(f"MCP server {call.server!r}: {err}") from err
        except ServerFailedError as err:
            raise OutcomeUnknownError(str(err)) from err
        return self._input_reply(call, asking) or self._reply(call, result)

    def _input_reply(self, call: ToolCall, asking: elicitation.Round) -> ToolReply | None:
        """The reply when the server asked for input nobody gave yet (it was told `cancel`: its result is moot)."""
        if asking.unanswered:
            log.info(
                "mcp_input_requested",
                agent=call.agent,
                server=call.server,
                tool=call.tool,
                unanswered=asking.unanswered,
                refused=asking.refused is not None,
            )
        scrub = self.redactor.scrub
        if asking.refused is not None:
            return ToolReply(
                text=scrub(
                    f"{call.server}.{call.tool} asked for input that Airlock does not accept "
                    f"({asking.refused}); it was answered cancel"
                ),
                outcome="error",
            )
        asked = asking.asked
        if asked is None:
            return None
        # The question reaches history and people's screens: a server echoing a secret is scrubbed
        # in every field shown (message, schema, URL, id), while the hash stays the one of the
        # server's own question, which is what the answer is matched against when the call is
        # sent again (`elicitation.Round.respond`).
        return ToolReply(
            text="",
            outcome="input_required",
            question=InputQuestion(
                mode=asked.mode,
                message=scrub(asked.message),
                requested_schema=self.redactor.scrub_json(asked.schema),
                url=scrub(asked.url) if asked.url else None,
                elicitation_id=scrub(asked.elicitation_id) if asked.elicitation_id else None,
                question_sha256=asked.sha256,
            ),
        )

    @contextlib.asynccontextmanager
    async def _progress(self, call: ToolCall) -> AsyncIterator[CallProgress | None]:
        """The call's progress callback and its steady heartbeat (None for a local activity)."""
        if activity.info().is_local:
            yield None
            return
        progress = CallProgress(call.call_id, call.server, call.tool, self.redactor.scrub)
        # Heartbeats let Temporal notice a dead worker in seconds, and carry a run's cancellation here.
        beat = asyncio.create_task(progress.beat())
        try:
            yield progress
        finally:
            beat.cancel()
            if progress.ignored:
                log.warning(
                    "mcp_progress_ignored",
                    server=call.server,
                    tool=call.tool,
                    received=progress.received,
                    ignored=progress.ignored,
                )

    def _reply(self, call: ToolCall, result: CallToolResult) -> ToolReply:
        rendered = render(result)
        if call.images:
            # Text first, images in what it leaves: a reply stays within max_result_bytes in history.
            rendered = render(result, attach=max(0, self.max_result_bytes - len(rendered.text.encode())))
        images = [ToolImage(mime_type=image.mime_type, data=image.data) for image in rendered.images]
        # A server that echoes its bearer token back must not put it into the model's context.
        text, cut = cap(self.redactor.scrub(rendered.text), self.max_result_bytes - rendered.attached_bytes)
        outcome: Literal["ok", "error"] = "error" if result.is_error else "ok"
        log.info(
            "tool_call",
            agent=call.agent,
            server=call.server,
            tool=call.tool,
            outcome=outcome,
            cut_bytes=cut,
            images=len(images),
            attempt=activity.info().attempt,
            output_mismatch=isinstance(result, Mismatched),
        )
        return ToolReply(text=text, outcome=outcome, cut_bytes=cut, images=images)

    @implements(steps.policy_rule)
    async def policy_rule(self, request: RuleRequest) -> Ruling:
        """The worker's Cedar policies on one call, at the time of the call (activities/rules.py)."""
        return await self.authority.rule_call(
            ToolCall(
                agent=request.agent,
                server=request.server,
                tool=request.tool,
                arguments=request.arguments,
                requester=request.requester,
            )
        )

    @implements(steps.notify)
    async def notify(self, notice: ApprovalNotice) -> None:
        """POST a pending approval to the configured webhook; failures retry, never block a run."""
        if not self.webhook_url:
            return
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.webhook_url, json=notice_body(notice))
        if response.status_code >= 300:
            raise WebhookFailedError(f"approval webhook answered {response.status_code}")


def notice_body(notice: ApprovalNotice) -> dict[str, Any]:
    """What the webhook receives: the notice, a `text` a person can read, and whether it hides characters.

    The notice's JSON keeps the arguments exact (a relay may need them); `text` shows every
    invisible or direction-changing character as its escape, and `hidden_characters` tells a
    relay to say so, as the inbox and the CLI do.
    """
    pending = notice.pending
    question = pending.question.message if pending.question is not None else None
    lines = [f"{pending.agent}: {pending.server}.{pending.tool}"]
    if question is not None:
        lines.append("asks: " + visible(question))
    else:
        lines.append("arguments: " + visible(json.dumps(pending.arguments, ensure_ascii=False, sort_keys=True)))
    hidden = (
        hides_text(pending.tool) or hides_text(pending.arguments) or (question is not None and hides_text(question))
    )
    if hidden:
        lines.insert(0, "this call holds invisible or direction-changing characters, shown as escapes")
    return {
        **notice.model_dump(mode="json"),
        "text": "\n".join(visible(line) for line in lines),
        "hidden_characters": hidden,
    }


def _round(call: ToolCall) -> elicitation.Round:
    return elicitation.Round(
        given=[
            elicitation.Given(question_sha256=a.question_sha256, action=a.action, content=a.content)
            for a in call.answers
        ]
    )
