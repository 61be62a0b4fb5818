"""Authority at the point of effect: whether this worker may send one tool call (worker side).

The `read` and `write` activities run with the worker's MCP sessions and credentials, and any
workflow in the namespace can schedule them with any input. So nothing in that input is taken
for Airlock's own state: the call must come from an `AgentWorkflow` on this worker's task
queue, the tool's policy is recomputed from the worker's own configuration, and a gated call
runs only with signed approvals that this worker verifies against the approvers file as it is
now (namespace, workflow id, run chain, call id, arguments hash, a quorum of current approvers).
Not workflow code: it reads files and Temporal histories (outside the determinism boundary).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from mcp.shared.tool_name_validation import TOOL_NAME_REGEX
from temporalio import activity
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.service import RPCError, RPCStatusCode

from activities import policy
from activities.approvers import ApproversFile
from activities.catalog import AgentSpec, Catalog
from mcp_servers.client.registry import McpPool, ServerUnavailable
from mcp_servers.client.tasks import requires_tasks
from workflows.arguments import arguments_sha256
from workflows.errors import ForgedCheckpointError, ServerUnreachableError, ToolNotSentError, UnauthorizedCallError
from workflows.identity import (
    CLOCK_SKEW_SECONDS,
    GROUP_PREFIX,
    DecisionClaims,
    Expected,
    RefusedError,
    Verifier,
    canonical_name,
)
from workflows.input_requests import answer_sha256
from workflows.payloads import Directory, GivenAnswer, Policy, ToolCall

log = structlog.get_logger(__name__)

AGENT_WORKFLOW = "AgentWorkflow"
# A run writes what was approved in it or, once continued as new, in its predecessor: a few runs
# back is generous, and bounds the history reads one write may cost.
MAX_CHAIN_RUNS = 4
# Runs whose first event this worker has read (their type, queue and origin never change).
MAX_CACHED_RUNS = 4_096
BY_WORKFLOW = ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
INITIATORS: dict[int, str] = {
    int(ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY): "a retry policy",
    int(ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE): "a cron schedule",
}
_INPUT_SUFFIX = re.compile(r"^/input-[1-9][0-9]{0,3}$")


@dataclass(frozen=True)
class _Start:
    """What a run's first event says about it."""

    workflow_type: str
    task_queue: str
    # The run it continued from, when it did so by the workflow's own continue-as-new.
    continued_from: str | None
    initiator: int
    input: bytes


class CallAuthority:
    """Checks each tool call against this worker's catalog, servers and approvers file."""

    def __init__(self, catalog: Catalog, pool: McpPool, approvers: ApproversFile | None) -> None:
        self.catalog = catalog
        self.pool = pool
        self.approvers = approvers
        self._starts: OrderedDict[tuple[str, str], _Start] = OrderedDict()

    async def check_call(self, call: ToolCall, *, write: bool) -> None:
        """Return when this worker may send `call`; otherwise log `call_refused` and raise `UnauthorizedCallError`.

        Nothing is sent before this returns, so a refused call writes (and reads) nothing.
        """
        try:
            await self._check(call, write=write)
        except RefusedError as err:
            info = activity.info()
            log.warning(
                "call_refused",
                activity=info.activity_type,
                workflow_id=info.workflow_id,
                run_id=info.workflow_run_id,
                workflow_type=info.workflow_type,
                agent=call.agent[:80],
                server=call.server[:80],
                tool=call.tool[:80],
                call_id=(call.call_id or "")[:200],
                reason=str(err),
            )
            raise UnauthorizedCallError(f"the worker refused {call.server[:80]}.{call.tool[:80]}: {err}") from None

    async def _check(self, call: ToolCall, *, write: bool) -> None:
        info = activity.info()
        if info.workflow_type != AGENT_WORKFLOW or not info.workflow_id or not info.workflow_run_id:
            raise RefusedError(
                f"scheduled by a {info.workflow_type or 'non-workflow'!s:.80} run, not by {AGENT_WORKFLOW}"
            )
        if not call.call_id:
            raise RefusedError("the call has no call id")
        spec = self.catalog.get(call.agent)
        if spec is None:
            raise RefusedError(f"no agent {call.agent[:80]!r} in this worker's catalog")
        if call.server not in spec.mcp_servers or call.server not in self.pool.servers:
            raise RefusedError(f"agent {call.agent!r} does not use server {call.server[:80]!r}")
        decided, read_only = await self._policy(spec, call)
        if decided == "deny":
            raise RefusedError(f"agent {call.agent!r} denies {call.server}.{call.tool}")
        if not write and not read_only:
            raise RefusedError("it is not a read-only tool of a trusted server: it is sent only as a write")
        self._check_key(call, info.workflow_id, write=write)
        client = activity.client()
        started = await self._start(client, info.workflow_id, info.workflow_run_id)
        if started.workflow_type != AGENT_WORKFLOW or started.task_queue != info.task_queue:
            raise RefusedError(f"the run is not an {AGENT_WORKFLOW} on task queue {info.task_queue!r}")
        accepted = [answer for answer in call.answers if answer.action == "accept"]
        if (decided != "approve" and not accepted) or self.approvers is None:
            # Without an approvers file nobody's decision can be verified here (docs/identity.md).
            return
        chain = await self._chain(client, info.workflow_id, info.workflow_run_id, info.task_queue)
        directory = self.approvers.current()
        namespace = info.workflow_namespace or ""
        if decided == "approve":
            self._check_quorum(call, spec, directory, namespace=namespace, workflow_id=info.workflow_id, chain=chain)
        needed = spec.approval_config().required if decided == "approve" else 1
        for index, answer in enumerate(accepted):
            # An accepted answer steers the call as its approval did: the same people, proven again.
            try:
                self._check_answer(answer, call, spec, directory, needed=needed, namespace=namespace, chain=chain)
            except RefusedError as err:
                raise RefusedError(f"accepted answer {index + 1}: {err}") from None

    async def _policy(self, spec: AgentSpec, call: ToolCall) -> tuple[Policy, bool]:
        """The tool's policy and read-only-ness as this worker's configuration gives them now."""
        connection = self.pool.connection(call.server)
        listed = connection.listed(call.tool)
        if listed is None:
            # Not listed on this worker since it started (or since a change): list once, now.
            try:
                await connection.list_tools()
            except ServerUnavailable as err:
                raise ServerUnreachableError(str(err)) from err
            listed = connection.listed(call.tool)
        if listed is None or not TOOL_NAME_REGEX.fullmatch(call.tool) or requires_tasks(listed):
            raise RefusedError(f"server {call.server!r} offers no tool {call.tool[:80]!r} that Airlock runs")
        config = self.pool.servers[call.server]
        hints = listed.annotations
        read_only = hints.read_only_hint if hints is not None else None
        decided = policy.resolve(call.tool, call.server, spec.tools, trusted=config.trusted, read_only_hint=read_only)
        return decided, config.trusted and read_only is True

    @staticmethod
    def _check_key(call: ToolCall, workflow_id: str, *, write: bool) -> None:
        """A write's idempotency key is the one its own run gives it; a read carries none."""
        key = call.idempotency_key
        if not write:
            if key is not None:
                raise RefusedError("a read carries no idempotency key")
            return
        base = f"{workflow_id}/{call.call_id}"
        if key is None or not (key == base or (key.startswith(base) and _INPUT_SUFFIX.match(key[len(base) :]))):
            raise RefusedError(f"the idempotency key must be {base!r} (or {base + '/input-<n>'!r})")

    def _check_answer(
        self,
        answer: GivenAnswer,
        call: ToolCall,
        spec: AgentSpec,
        directory: Directory,
        *,
        needed: int,
        namespace: str,
        chain: tuple[str, ...],
    ) -> None:
        """Enough distinct current approvers signed exactly this answer to this question of this call."""
        workflow_id = activity.info().workflow_id
        given = answer_sha256(answer.action, answer.content)
        self._check_signers(
            answer.signatures,
            call,
            spec,
            directory,
            needed=needed,
            what="answer",
            bound=lambda claims: {
                "namespace": claims.namespace == namespace,
                "workflow_id": claims.workflow_id == workflow_id,
                "run_id": claims.run_id in chain,
                "call_id": claims.call_id == call.call_id,
                "decision": claims.decision == "answer",
                "question": claims.arguments_sha256 == answer.question_sha256,
                "answer": claims.answer_sha256 == given,
            },
        )

    def _check_quorum(
        self,
        call: ToolCall,
        spec: AgentSpec,
        directory: Directory,
        *,
        namespace: str,
        workflow_id: str,
        chain: tuple[str, ...],
    ) -> None:
        """Enough distinct current approvers signed an approval of exactly this call."""
        effective = arguments_sha256(call.arguments)
        self._check_signers(
            call.authority,
            call,
            spec,
            directory,
            needed=spec.approval_config().required,
            what="approval",
            bound=lambda claims: {
                "namespace": claims.namespace == namespace,
                "workflow_id": claims.workflow_id == workflow_id,
                "run_id": claims.run_id in chain,
                "call_id": claims.call_id == call.call_id,
                "decision": claims.decision == "approve",
                "arguments": (claims.edited_sha256 or claims.arguments_sha256) == effective,
            },
        )

    @staticmethod
    def _check_signers(
        tokens: list[str],
        call: ToolCall,
        spec: AgentSpec,
        directory: Directory,
        *,
        needed: int,
        what: str,
        bound: Callable[[DecisionClaims], dict[str, bool]],
    ) -> None:
        """At least `needed` distinct current approvers signed `tokens` bound as `bound` says."""
        config = spec.approval_config()
        verifier = Verifier(directory)
        allowed = {canonical_name(p) for p in _members(directory, [*config.approvers, *config.escalate_to])}
        requester = canonical_name(call.requester) if call.requester else None
        now = datetime.now(UTC).timestamp()
        people: set[str] = set()
        reasons: list[str] = []
        for token in tokens[:100]:
            try:
                claims = verifier.signed_claims(token)
                wrong = [name for name, ok in bound(claims).items() if not ok]
                if wrong:
                    raise RefusedError(f"it is for another call (its {', '.join(wrong)} differ)")
                if claims.iat > now + CLOCK_SKEW_SECONDS:
                    raise RefusedError("it claims to be issued in the future")
                # The signer's rules (a person signs for itself, a service asserts only whom it
                # may), judged as when it was signed: expiry was checked when the run applied it.
                verifier.identify(
                    token,
                    Expected(
                        workflow_id=claims.workflow_id,
                        call_id=claims.call_id,
                        decision=claims.decision,
                        approver=claims.sub,
                        arguments_sha256=claims.arguments_sha256,
                        edited_sha256=claims.edited_sha256,
                        answer_sha256=claims.answer_sha256,
                        namespace=claims.namespace,
                        run_id=claims.run_id,
                    ),
                    datetime.fromtimestamp(claims.iat, UTC),
                )
                person = canonical_name(claims.sub)
                if config.approvers and person not in allowed:
                    raise RefusedError(f"{claims.sub[:80]!r} is not an approver of agent {spec.name!r} now")
                if not config.allow_self_approval and requester is not None and person == requester:
                    raise RefusedError(f"{claims.sub[:80]!r} requested the run")
            except RefusedError as err:
                reasons.append(str(err)[:200])
                continue
            people.add(person)
        if len(people) < needed:
            why = f" ({'; '.join(reasons[:5])})" if reasons else ""
            raise RefusedError(
                f"it needs {needed} current approver(s), and {len(people)} signed {what}(s) of "
                f"exactly this call count{why}"
            )

    async def _start(self, client: Client, workflow_id: str, run_id: str) -> _Start:
        """A run's first event (cached: it never changes)."""
        key = (workflow_id, run_id)
        found = self._starts.get(key)
        if found is not None:
            self._starts.move_to_end(key)
            return found
        event = await _one_event(client, workflow_id, run_id, close=False)
        if event is None or not event.HasField("workflow_execution_started_event_attributes"):
            raise RefusedError("the run's history does not start as a workflow does")
        attrs = event.workflow_execution_started_event_attributes
        found = _Start(
            workflow_type=attrs.workflow_type.name,
            task_queue=attrs.task_queue.name,
            continued_from=attrs.continued_execution_run_id or None,
            initiator=attrs.initiator,
            input=attrs.input.SerializeToString(deterministic=True),
        )
        self._starts[key] = found
        if len(self._starts) > MAX_CACHED_RUNS:
            self._starts.popitem(last=False)
        return found

    async def _chain(self, client: Client, workflow_id: str, run_id: str, task_queue: str) -> tuple[str, ...]:
        """This run and the runs it continued from by its own continue-as-new, newest first."""
        chain = [run_id]
        current = run_id
        while len(chain) < MAX_CHAIN_RUNS:
            started = await self._start(client, workflow_id, current)
            if (
                started.continued_from is None
                or started.initiator != ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
            ):
                break
            try:
                await continued_by(client, workflow_id, current, started, task_queue)
            except RefusedError:
                break
            current = started.continued_from
            chain.append(current)
        return tuple(chain)

    async def check_origin(self) -> None:
        """The running `AgentWorkflow` run was continued as new by its predecessor, with this very input.

        `ForgedCheckpointError` otherwise: only a run of Airlock's own continue-as-new carries a
        checkpoint (a cron start, a retry or another workflow type's continue-as-new does not).
        """
        info = activity.info()
        client = activity.client()
        workflow_id, run_id = info.workflow_id or "", info.workflow_run_id or ""
        try:
            started = await self._start(client, workflow_id, run_id)
            if started.workflow_type != AGENT_WORKFLOW or started.task_queue != info.task_queue:
                raise RefusedError(f"the run is not an {AGENT_WORKFLOW} on task queue {info.task_queue!r}")
            if started.continued_from is None:
                raise RefusedError("the run did not continue from another")
            if started.initiator != BY_WORKFLOW:
                how = INITIATORS.get(started.initiator, "an unknown initiator")
                raise RefusedError(f"the run was started by {how}, not by its own continue-as-new")
            await continued_by(client, workflow_id, run_id, started, info.task_queue)
        except RefusedError as err:
            log.warning(
                "checkpoint_refused", workflow_id=info.workflow_id, run_id=info.workflow_run_id, reason=str(err)
            )
            raise ForgedCheckpointError(
                f"the checkpoint did not come from Airlock's own continue-as-new: {err}"
            ) from None


async def continued_by(client: Client, workflow_id: str, run_id: str, started: _Start, task_queue: str) -> None:
    """`RefusedError` unless the run `started` continued from is an `AgentWorkflow` on `task_queue`
    whose last event continued it as new into `run_id`, with the input `run_id` started with."""
    previous = started.continued_from
    assert previous is not None
    first = await _one_event(client, workflow_id, previous, close=False)
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        raise RefusedError("the previous run has no history")
    attrs = first.workflow_execution_started_event_attributes
    if attrs.workflow_type.name != AGENT_WORKFLOW or attrs.task_queue.name != task_queue:
        raise RefusedError(
            f"the previous run is a {attrs.workflow_type.name[:80]!r} on task queue {attrs.task_queue.name[:80]!r}"
        )
    last = await _one_event(client, workflow_id, previous, close=True)
    if last is None or last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        raise RefusedError("the previous run did not continue as new")
    moved = last.workflow_execution_continued_as_new_event_attributes
    if moved.new_execution_run_id != run_id:
        raise RefusedError("the previous run continued as another run")
    if moved.input.SerializeToString(deterministic=True) != started.input:
        raise RefusedError("the run's input is not the one its previous run continued with")


async def _one_event(client: Client, workflow_id: str, run_id: str, *, close: bool) -> HistoryEvent | None:
    """A run's first event, or its close event (None when it has none yet)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        async for event in handle.fetch_history_events(
            page_size=1,
            event_filter_type=(
                WorkflowHistoryEventFilterType.CLOSE_EVENT if close else WorkflowHistoryEventFilterType.ALL_EVENT
            ),
        ):
            return event
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise RefusedError("the run does not exist in this namespace") from None
        # Nothing was sent: the workflow may try again.
        raise ToolNotSentError(f"the run's history could not be read to check the call: {err.message[:200]}") from err
    return None


def _members(directory: Directory, entries: list[str]) -> set[str]:
    """People named by approver entries in `directory` as it is now: names, and groups expanded."""
    people: set[str] = set()
    for entry in entries:
        if entry.startswith(GROUP_PREFIX):
            people.update(directory.groups.get(entry[len(GROUP_PREFIX) :], []))
        else:
            people.add(entry)
    return people
