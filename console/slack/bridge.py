"""The Slack bridge: one message per waiting call, kept as a view over the run's pending record.

It reconciles rather than reacts: on start and every few seconds it lists the waiting calls as
`airlock pending` and the inbox do (`console.inbox.runs.Runs.waiting`), posts a message for a
call it has not shown, updates one whose call changed (an approval of a quorum, an edit, an
escalation), and closes one whose call is no longer waiting, saying from the run's audit how it
ended (approved, rejected, timed out, answered) or that the run ended first. A server's question
(an input request) on a call gets a message of its own, with the question's form. Whoever decided, wherever,
the message follows, because the run is the only source.

Where each message is lives in a small state file on the inbox host (JSON, mode 0600, replaced
atomically), so a restart neither posts twice nor loses a message it must close. A file rather
than reading the channels back with `conversations.history`: that needs channel ids (a
`#name` is not one), extra scopes and paging through every channel; the file needs none. Each
message also carries Slack message metadata (`airlock_call`: workflow, run, call, hash) so other
tools can tell which call a message shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from console.errors import ConsoleError
from console.inbox.runs import Runs
from console.slack.config import SlackConfig
from console.slack.messages import Ending, metadata, render
from mcp_servers.tomlfiles import ConfigError
from workflows.payloads import AuditEntryView, PendingApprovalView

log = structlog.get_logger("airlock.slack")

# What a call's message keeps of it, to say how it ended once the run no longer lists it.
_KEPT = (
    "workflow_id",
    "run_id",
    "call_id",
    "agent",
    "server",
    "tool",
    "arguments",
    "arguments_sha256",
    "requested_at",
    "deadline",
    "approvals_needed",
    "approved_by",
    "requester",
    "requester_proof",
    "deciders",
    "kind",
    "question",
)


# Slack's answers that mean the message cannot be updated ever again: the bridge forgets it.
_GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "is_archived"})


def message_key(workflow_id: str, run_id: str | None, call_id: str, kind: str = "approval") -> str:
    """The state file's key of one call's message (an approved call that then asks for input has two)."""
    return json.dumps([workflow_id, run_id or "", call_id, kind])


@dataclass
class Posted:
    """One message the bridge posted: where it is, what it showed, and the call as last seen."""

    channel: str
    ts: str
    digest: str
    call: dict[str, Any]


@dataclass
class Bridge:
    """Keeps Slack's messages in step with what waits; `run` until stopped, `sync` for one pass."""

    client: Client
    config: SlackConfig
    runs: Runs
    web: WebClient
    _posted: dict[str, Posted] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._posted = _load(self.config.state_file)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile now and every `interval_seconds` until `stop` is set; a failed pass is retried."""
        while not stop.is_set():
            try:
                await self.sync()
            except (ConsoleError, RPCError, SlackClientError, OSError) as err:
                log.warning("slack sync failed", error=type(err).__name__, why=_why(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.interval_seconds)

    def posted(self, workflow_id: str, run_id: str | None, call_id: str, kind: str = "approval") -> Posted | None:
        """The message that shows this call, if the bridge posted one and it is still open."""
        return self._posted.get(message_key(workflow_id, run_id, call_id, kind))

    async def sync(self) -> None:
        """One pass: post what is new, update what changed, close what no longer waits."""
        async with self._lock:
            calls = await self.runs.waiting(self.config.service)
            seen: set[str] = set()
            for call in calls:
                kind = "input" if call.get("kind") == "input" else "approval"
                key = message_key(call["workflow_id"], call.get("run_id"), call["call_id"], kind)
                seen.add(key)
                await self._guarded(key, self._show(key, {k: call.get(k) for k in _KEPT}))
            for key in [k for k in self._posted if k not in seen]:
                await self._guarded(key, self._close(key))

    async def settle(self, workflow_id: str, run_id: str | None, call_id: str, kind: str = "approval") -> None:
        """Close this call's message now if it no longer waits (after a click), without a whole pass."""
        key = message_key(workflow_id, run_id, call_id, kind)
        async with self._lock:
            if key in self._posted:
                await self._guarded(key, self._close(key))

    async def _guarded(self, key: str, step: Coroutine[Any, Any, None]) -> None:
        """Run one message's step; Slack refusing it is logged and holds up no other message.

        A message Slack can no longer update (deleted, or its channel archived) is forgotten.
        Slack being unreachable is not a refusal: it stops the pass, and the next one retries.
        """
        try:
            await step
        except SlackApiError as err:
            why = _why(err)
            log.warning("slack message step failed", why=why)
            if why in _GONE and self._posted.pop(key, None) is not None:
                _save(self.config.state_file, self._posted)

    async def _show(self, key: str, call: dict[str, Any]) -> None:
        text, blocks = render(call, inbox_url=self.config.inbox_url)
        digest = _digest(blocks)
        known = self._posted.get(key)
        if known is not None and known.digest == digest:
            return
        if known is None:
            channel = self.config.channel_for(str(call.get("agent")))
            if channel is None:
                return
            reply = await asyncio.to_thread(
                self.web.chat_postMessage,
                channel=channel,
                text=text,
                blocks=blocks,
                metadata=metadata(call, open_=True),
                unfurl_links=False,
            )
            self._posted[key] = Posted(str(reply["channel"]), str(reply["ts"]), digest, call)
            log.info("slack message posted", workflow_id=call["workflow_id"], call_id=call["call_id"])
        else:
            await asyncio.to_thread(
                self.web.chat_update,
                channel=known.channel,
                ts=known.ts,
                text=text,
                blocks=blocks,
                metadata=metadata(call, open_=True),
            )
            self._posted[key] = Posted(known.channel, known.ts, digest, call)
            log.info("slack message updated", workflow_id=call["workflow_id"], call_id=call["call_id"])
        _save(self.config.state_file, self._posted)

    async def _close(self, key: str) -> None:
        known = self._posted[key]
        ending = await self.ending(known.call)
        if ending is None:
            return  # cannot tell yet (a query failed, or the listing missed it): the next pass asks again
        text, blocks = render(known.call, inbox_url=self.config.inbox_url, ending=ending)
        await asyncio.to_thread(
            self.web.chat_update,
            channel=known.channel,
            ts=known.ts,
            text=text,
            blocks=blocks,
            metadata=metadata(known.call, open_=False),
        )
        del self._posted[key]
        _save(self.config.state_file, self._posted)
        log.info(
            "slack message closed",
            workflow_id=known.call["workflow_id"],
            call_id=known.call["call_id"],
            how=ending.kind,
        )

    async def ending(self, call: dict[str, Any]) -> Ending | None:
        """How the call stopped waiting, from its run; None while it still waits or the run cannot say."""
        handle = self.client.get_workflow_handle(call["workflow_id"], run_id=call.get("run_id") or None)
        call_id = call["call_id"]
        kind = "input" if call.get("kind") == "input" else "approval"
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return Ending("ended", "The run is gone (deleted, or past its retention) before this call was decided.")
            return None
        status = description.status
        running = status == WorkflowExecutionStatus.RUNNING
        if running:
            try:
                pending = await handle.query(
                    "pending_approvals", result_type=list[PendingApprovalView], rpc_timeout=self.runs.wait
                )
            except (WorkflowQueryFailedError, RPCError, ValueError):
                return None
            if any(p.call_id == call_id and p.kind == kind for p in pending):
                return None
        try:
            audit = await handle.query("audit", result_type=list[AuditEntryView], rpc_timeout=self.runs.wait)
        except (WorkflowQueryFailedError, RPCError, ValueError):
            audit = []  # a finished run whose worker is gone cannot replay: say how the run ended
        ending = _from_audit([e for e in audit if e.call_id == call_id], kind)
        if ending is not None:
            return ending
        if kind == "input" and running:
            return Ending("ended", "The server no longer asks (the call went on without an answer, or ended).")
        if status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            return Ending("ended", "The run continued as new; a newer message shows the call if it still waits.")
        if not running:
            name = status.name.lower().replace("_", " ") if status is not None else "unknown"
            return Ending("ended", f"The run ended ({name}) before this call was decided.")
        return None


def _from_audit(entries: list[AuditEntryView], kind: str) -> Ending | None:
    """The call's ending as its audit entries say: a rejection, a timeout, the approvals, or the answer."""

    def who(entry: AuditEntryView) -> str:
        return f"{entry.actor} ({entry.identity})" if entry.identity else str(entry.actor)

    if kind == "input":
        answer = next((e for e in reversed(entries) if e.event == "answered"), None)
        if answer is None:
            return None
        return Ending("answered", f"Answered by {who(answer)}: {answer.action or 'accept'}.")

    outcome = next((e.outcome for e in reversed(entries) if e.event == "outcome" and e.outcome), None)
    after = f" Outcome: {outcome}." if outcome else ""
    for entry in reversed(entries):
        if entry.event == "rejected":
            reason = f": {entry.reason}" if entry.reason else ""
            return Ending("rejected", f"Rejected by {who(entry)}{reason}.{after}")
        if entry.event == "timed_out":
            reason = f" ({entry.reason})" if entry.reason else ""
            return Ending("timed_out", f"Timed out: no decision before the deadline{reason}.{after}")
    approvals = [who(e) for e in entries if e.event == "approved"]
    if approvals:
        return Ending("approved", f"Approved by {', '.join(approvals)}.{after}")
    return None


def _digest(blocks: list[Any]) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True).encode()).hexdigest()


def _why(err: Exception) -> str:
    """What went wrong, without the request: a Slack error's code, an RPC's message."""
    if isinstance(err, SlackApiError):
        return str(err.response.get("error", "slack api error"))
    if isinstance(err, RPCError):
        return err.message
    if isinstance(err, ConsoleError):
        return str(err)
    return type(err).__name__


def _load(path: Path) -> dict[str, Posted]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        # A broken file would make the bridge post every waiting call again: stop and say so.
        raise ConfigError(f"cannot read the Slack state file {path}: {err}") from None
    try:
        return {str(key): Posted(**entry) for key, entry in data.items()}
    except (AttributeError, TypeError):
        raise ConfigError(f"{path} is not a Slack state file (delete it to post the waiting calls again)") from None


def _save(path: Path, posted: dict[str, Posted]) -> None:
    """Replace the state file atomically (a crash leaves the old or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {key: vars(entry) for key, entry in posted.items()}
    fd, temp = tempfile.mkstemp(prefix=".slack-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, default=str)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
