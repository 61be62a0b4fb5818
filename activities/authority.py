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
from mcp.types import ToolAnnotations
from temporalio import activity
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.service import RPCError, RPCStatusCode

from activities import policy
from activities.approvers import ApproversFile
from activities.catalog import AgentSpec, Catalog
from activities.pins import PinFile, Verdict, tool_digest
from activities.pins import mode as pin_mode
from mcp_servers.client.errors import ServerFailedError
from mcp_servers.client.registry import McpPool
from mcp_servers.client.tasks import requires_tasks
from workflows.arguments import arguments_sha256
from workflows.errors import ForgedCheckpointError, ServerUnreachableError, ToolNotSentError, UnauthorizedCallError
from workflows.identity import (
    CLOCK_SKEW_SECONDS,
    GROUP_PREFIX,
    AuthorityRefusedError,
    DecisionClaims,
    Expected,
    Verifier,
    canonical_name,
)
from workflows.input_requests import answer_sha256
from workflows.payloads import Directory, GivenAnswer, Policy, Ruling, ToolCall

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

    def __init__(
        self,
        catalog: Catalog,
        pool: McpPool,
        approvers: ApproversFile | None,
        *,
        pins: PinFile | None = None,
        on_change: Callable[..., None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.pool = pool
        self.approvers = approvers
        self.pins = pins
        # Told of each tool found changed against its pin or its plan (log line and metric).
        self.on_change = on_change
        self._starts: OrderedDict[tuple[str, str], _Start] = OrderedDict()

    async def check_call(self, call: ToolCall, *, write: bool) -> None:
        """Return when this worker may send `call`; otherwise log `call_refused` and raise `UnauthorizedCallError`.

        Nothing is sent before this returns, so a refused call writes (and reads) nothing.
        """
        try:
            await self._check(call, write=write)
        except AuthorityRefusedError as err:
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
            raise AuthorityRefusedError(
                f"scheduled by a {info.workflow_type or 'non-workflow'!s:.80} run, not by {AGENT_WORKFLOW}"
            )
        if not call.call_id:
            raise AuthorityRefusedError("the call has no call id")
        spec = self.catalog.get(call.agent)
        if spec is None:
            raise AuthorityRefusedError(f"no agent {call.agent[:80]!r} in this worker's catalog")
        if call.server not in spec.mcp_servers or call.server not in self.pool.servers:
            raise AuthorityRefusedError(f"agent {call.agent!r} does not use server {call.server[:80]!r}")
        decided, read_only = await self._policy(spec, call, write=write)
        ruling = self.ruling(spec, call, decided)
        if ruling is not None and ruling.policy == "deny":
            why = f": {ruling.reason}" if ruling.reason else ""
            raise AuthorityRefusedError(
                f"policy {ruling.rule} denies {call.server}.{call.tool} with these arguments{why}"
            )
        if ruling is not None:
            decided = ruling.policy
        if decided == "deny":
            raise AuthorityRefusedError(f"agent {call.agent!r} denies {call.server}.{call.tool}")
        if not write and not read_only:
            raise AuthorityRefusedError("it is not a read-only tool of a trusted server: it is sent only as a write")
        self._check_key(call, info.workflow_id, write=write)
        client = activity.client()
        started = await self._start(client, info.workflow_id, info.workflow_run_id)
        if started.workflow_type != AGENT_WORKFLOW or started.task_queue != info.task_queue:
            raise AuthorityRefusedError(f"the run is not an {AGENT_WORKFLOW} on task queue {info.task_queue!r}")
        accepted = [answer for answer in call.answers if answer.action == "accept"]
        if (decided != "approve" and not accepted) or self.approvers is None:
            # Without an approvers file nobody's decision can be verified here (docs/identity.md).
            return
        chain = await self._chain(client, info.workflow_id, info.workflow_run_id, info.task_queue)
        directory = self.approvers.current()
        namespace = info.workflow_namespace or ""
        needed = spec.approval_config().required if decided == "approve" else 1
        approvers: list[str] | None = None
        if ruling is not None and ruling.policy == "approve":
            # The policy's quorum and approvers as the worker's files give them now, not as the run recorded them.
            needed = ruling.approvals or needed
            approvers = ruling.approvers
        if decided == "approve":
            self._check_quorum(
                call,
                spec,
                directory,
                namespace=namespace,
                workflow_id=info.workflow_id,
                chain=chain,
                needed=needed,
                approvers=approvers,
            )
        for index, answer in enumerate(accepted):
            # An accepted answer steers the call as its approval did: the same people, proven again.
            try:
                self._check_answer(
                    answer, call, spec, directory, needed=needed, namespace=namespace, chain=chain, approvers=approvers
                )
            except AuthorityRefusedError as err:
                raise AuthorityRefusedError(f"accepted answer {index + 1}: {err}") from None

    async def _policy(self, spec: AgentSpec, call: ToolCall, *, write: bool) -> tuple[Policy, bool]:
        """The tool's policy and read-only-ness as this worker's configuration gives them now.

        The definition is judged as the server gives it now. A call whose tool definition differs
        from the one its run planned (and its approver saw) is refused: always for a write, and for
        a read once the server's tools are pinned. A tool that differs from its pin is refused
        (`pins = "hide"`) or needs approval whatever its policy (`pins = "gate"`).
        """
        connection = self.pool.connection(call.server)
        config = self.pool.servers[call.server]
        pins = self.pins.current() if self.pins is not None else {}
        pinned = self.pins is not None and pin_mode(call.server, config, pins) != "off"
        compared = call.definition_sha256 is not None and (write or pinned)
        # After an announced change the last listing is stale; a server that cannot announce one may
        # have changed silently, so an approved write lists again before it is sent.
        stale = connection.tools_changed or (write and not connection.hears_changes)
        listed = connection.listed(call.tool)
        if listed is None or ((compared or pinned) and stale):
            # Not listed on this worker since it started (or since a change): list once, now.
            try:
                await connection.list_tools()
            except ServerFailedError as err:
                raise ServerUnreachableError(str(err)) from err
            listed = connection.listed(call.tool)
        if listed is None or not TOOL_NAME_REGEX.fullmatch(call.tool) or requires_tasks(listed):
            raise AuthorityRefusedError(f"server {call.server!r} offers no tool {call.tool[:80]!r} that Airlock runs")
        hints = listed.annotations
        read_only = hints.read_only_hint if hints is not None else None
        decided = policy.resolve(call.tool, call.server, spec.tools, trusted=config.trusted, read_only_hint=read_only)
        verdict: Verdict | None = None
        if self.pins is not None and pinned:
            mode, verdict = self.pins.check(call.server, config, listed)
            if verdict is not None and verdict.status != "pinned" and self.on_change is not None:
                self.on_change(call.server, call.tool, verdict, mode=mode, agent=call.agent)
        now = tool_digest(listed)
        if compared and now != call.definition_sha256:
            pin = f"; it is {verdict.status} since pinned" if verdict is not None and verdict.status != "pinned" else ""
            raise AuthorityRefusedError(
                f"the definition of {call.server}.{call.tool[:80]} changed after the run listed it, so after any "
                f"approval of this call (sha256 {str(call.definition_sha256)[:12]}… → {now[:12]}…){pin}; "
                "nothing was sent"
            )
        if verdict is not None and verdict.status != "pinned":
            if pin_mode(call.server, config, pins) == "hide":
                raise AuthorityRefusedError(
                    f"{call.server}.{call.tool[:80]} is {verdict.status} since pinned and its server hides such tools "
                    "(airlock mcp tools shows the diff; airlock mcp pin --update accepts it)"
                )
            decided = "approve" if decided != "deny" else decided
        return decided, config.trusted and read_only is True

    async def rule_call(self, call: ToolCall) -> Ruling:
        """The ruling the `policy_rule` step records: the policies' decision, or `[tools]`' (rule None)."""
        spec = self.catalog.get(call.agent)
        if spec is None or call.server not in spec.mcp_servers or call.server not in self.pool.servers:
            return Ruling(policy="deny", rule="cedar", reason=f"agent {call.agent[:80]!r} has no such tool")
        connection = self.pool.connection(call.server)
        if connection.listed(call.tool) is None:
            try:
                await connection.list_tools()
            except ServerFailedError as err:
                raise ServerUnreachableError(str(err)) from err
        listed = connection.listed(call.tool)
        if listed is None:
            return Ruling(policy="deny", rule="cedar", reason=f"server {call.server!r} no longer offers this tool")
        config = self.pool.servers[call.server]
        hints = listed.annotations
        read_only = hints.read_only_hint if hints is not None else None
        decided = policy.resolve(call.tool, call.server, spec.tools, trusted=config.trusted, read_only_hint=read_only)
        return self.ruling(spec, call, decided) or Ruling(policy=decided)

    def ruling(self, spec: AgentSpec, call: ToolCall, decided: Policy) -> Ruling | None:
        """The worker's Cedar policies on `call` now (None: none matches; `decided`, the `[tools]` policy, holds).

        The tool must be listed (`_policy` lists it). A policy may lower `[tools]`' `approve` to `auto`,
        but never below what a changed pin requires (`decided` stricter than the `[tools]` rules).
        """
        if decided == "deny" or not self.catalog.rules.applicable(spec.name, call.server, call.tool):
            return None
        listed = self.pool.connection(call.server).listed(call.tool)
        hints = listed.annotations if listed is not None else None
        config = self.pool.servers[call.server]
        ruled = self.catalog.rules.judge(
            agent=spec.name,
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
            requester=call.requester,
            trusted=config.trusted,
            annotations=annotation_hints(hints),
        )
        read_only = hints.read_only_hint if hints is not None else None
        base = policy.resolve(call.tool, call.server, spec.tools, trusted=config.trusted, read_only_hint=read_only)
        if ruled is not None and ruled.policy == "auto" and decided != base:
            return ruled.model_copy(update={"policy": decided})
        return ruled

    @staticmethod
    def _check_key(call: ToolCall, workflow_id: str, *, write: bool) -> None:
        """A write's idempotency key is the one its own run gives it; a read carries none."""
        key = call.idempotency_key
        if not write:
            if key is not None:
                raise AuthorityRefusedError("a read carries no idempotency key")
            return
        base = f"{workflow_id}/{call.call_id}"
        if key is None or not (key == base or (key.startswith(base) and _INPUT_SUFFIX.match(key[len(base) :]))):
            raise AuthorityRefusedError(f"the idempotency key must be {base!r} (or {base + '/input-<n>'!r})")

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
        approvers: list[str] | None = None,
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
            approvers=approvers,
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
        needed: int,
        approvers: list[str] | None = None,
    ) -> None:
        """Enough distinct current approvers (a policy's `approvers`, else the agent's) approved exactly this call."""
        effective = arguments_sha256(call.arguments)
        self._check_signers(
            call.authority,
            call,
            spec,
            directory,
            needed=needed,
            approvers=approvers,
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
        approvers: list[str] | None = None,
    ) -> None:
        """At least `needed` distinct current approvers signed `tokens` bound as `bound` says."""
        config = spec.approval_config()
        if approvers is not None:
            config = config.model_copy(update={"approvers": approvers})
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
                    raise AuthorityRefusedError(f"it is for another call (its {', '.join(wrong)} differ)")
                if claims.iat > now + CLOCK_SKEW_SECONDS:
                    raise AuthorityRefusedError("it claims to be issued in the future")
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
                    raise AuthorityRefusedError(f"{claims.sub[:80]!r} is not an approver of agent {spec.name!r} now")
                if not config.allow_self_approval and requester is not None and person == requester:
                    raise AuthorityRefusedError(f"{claims.sub[:80]!r} requested the run")
            except AuthorityRefusedError as err:
                reasons.append(str(err)[:200])
                continue
            people.add(person)
        if len(people) < needed:
            why = f" ({'; '.join(reasons[:5])})" if reasons else ""
            raise AuthorityRefusedError(
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
            raise AuthorityRefusedError("the run's history does not start as a workflow does")
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
            except AuthorityRefusedError:
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
                raise AuthorityRefusedError(f"the run is not an {AGENT_WORKFLOW} on task queue {info.task_queue!r}")
            if started.continued_from is None:
                raise AuthorityRefusedError("the run did not continue from another")
            if started.initiator != BY_WORKFLOW:
                how = INITIATORS.get(started.initiator, "an unknown initiator")
                raise AuthorityRefusedError(f"the run was started by {how}, not by its own continue-as-new")
            await continued_by(client, workflow_id, run_id, started, info.task_queue)
        except AuthorityRefusedError as err:
            log.warning(
                "checkpoint_refused", workflow_id=info.workflow_id, run_id=info.workflow_run_id, reason=str(err)
            )
            raise ForgedCheckpointError(
                f"the checkpoint did not come from Airlock's own continue-as-new: {err}"
            ) from None


async def continued_by(client: Client, workflow_id: str, run_id: str, started: _Start, task_queue: str) -> None:
    """`AuthorityRefusedError` unless the run `started` continued from is an `AgentWorkflow` on `task_queue`
    whose last event continued it as new into `run_id`, with the input `run_id` started with."""
    previous = started.continued_from
    assert previous is not None
    first = await _one_event(client, workflow_id, previous, close=False)
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        raise AuthorityRefusedError("the previous run has no history")
    attrs = first.workflow_execution_started_event_attributes
    if attrs.workflow_type.name != AGENT_WORKFLOW or attrs.task_queue.name != task_queue:
        raise AuthorityRefusedError(
            f"the previous run is a {attrs.workflow_type.name[:80]!r} on task queue {attrs.task_queue.name[:80]!r}"
        )
    last = await _one_event(client, workflow_id, previous, close=True)
    if last is None or last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        raise AuthorityRefusedError("the previous run did not continue as new")
    moved = last.workflow_execution_continued_as_new_event_attributes
    if moved.new_execution_run_id != run_id:
        raise AuthorityRefusedError("the previous run continued as another run")
    if moved.input.SerializeToString(deterministic=True) != started.input:
        raise AuthorityRefusedError("the run's input is not the one its previous run continued with")


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
            raise AuthorityRefusedError("the run does not exist in this namespace") from None
        # Nothing was sent: the workflow may try again.
        raise ToolNotSentError(f"the run's history could not be read to check the call: {err.message[:200]}") from err
    return None


def annotation_hints(hints: ToolAnnotations | None) -> dict[str, bool | None]:
    """A listed tool's four MCP hints by their spec names (None: the server did not say)."""
    if hints is None:
        return {}
    return {
        "readOnlyHint": hints.read_only_hint,
        "destructiveHint": hints.destructive_hint,
        "idempotentHint": hints.idempotent_hint,
        "openWorldHint": hints.open_world_hint,
    }


def _members(directory: Directory, entries: list[str]) -> set[str]:
    """People named by approver entries in `directory` as it is now: names, and groups expanded."""
    people: set[str] = set()
    for entry in entries:
        if entry.startswith(GROUP_PREFIX):
            people.update(directory.groups.get(entry[len(GROUP_PREFIX) :], []))
        else:
            people.add(entry)
    return people
