"""The inbox web app (Starlette): routes, security headers, and the pages they render."""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from temporalio.service import RPCError

from activities.approvers import NAME
from console.errors import DecisionNotRecordedError
from console.events import events_after
from console.inbox import forms, live
from console.inbox.auth import ForbiddenError, Gatekeeper, NotAuthenticatedError, Person
from console.inbox.markup import marked_html
from console.inbox.runs import Runs, may_decide
from console.waiting import AGENT_NAME, ListingError, age, until
from workflows.arguments import schema_errors
from workflows.visible import hides_text, visible

log = structlog.get_logger("airlock.inbox")

HERE = Path(__file__).parent
# No inline script or style anywhere: everything the pages use is served from /static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Server-sent events: never buffered by a proxy on the way.
SSE_HEADERS = {"X-Accel-Buffering": "no"}
# Strings longer than this are folded in the argument view (opened with a click or Enter).
FOLD_CHARS = 160
# Calls listed per page: ten thousand waiting are listed in pages, and only the shown calls are
# asked who may decide them.
PER_PAGE = 100
MAX_FORM_BYTES = 256_000
EXPORT_FIELDS = [
    "workflow_id",
    "at",
    "event",
    "call_id",
    "agent",
    "server",
    "tool",
    "actor",
    "identity",
    "reason",
    "outcome",
    "arguments_sha256",
    "edited_from_sha256",
]

Handler = Callable[[Request, Person], Awaitable[Response]]

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def breakable(text: object) -> Markup:
    """`text` escaped, with a line-break chance after each `/`, `-`, `_`, `.` and `:` (`<wbr>`).

    Ids (`support-3f2a…`, `call-support-1`) then wrap between their parts, never inside one:
    the stylesheet no longer breaks them anywhere. Escaped text holds none of those characters
    inside an entity, so the tags land only between the text's own characters.
    """
    return Markup(_SEPARATOR.sub(r"\1<wbr>", str(escape(text))))


_SEPARATOR = re.compile(r"([/\-_.:])")
templates.filters["ids"] = breakable
# Text chosen by models and servers shows its hidden characters, marked (workflows/visible.py).
templates.filters["visible"] = marked_html
templates.tests["hiding"] = hides_text
templates.filters["escapes"] = visible  # where HTML cannot mark (an <option>), the plain escapes


def build_app(runs: Runs, gatekeeper: Gatekeeper) -> Starlette:
    """The inbox as an ASGI app: every request passes the Host check and identifies its person."""

    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                gatekeeper.check_host(request)
                person = gatekeeper.person(request)
                if request.method == "POST":
                    gatekeeper.check_origin(request)
                response = await handler(request, person)
            except NotAuthenticatedError as err:
                log.warning("inbox request not authenticated", reason=str(err), path=request.url.path)
                response = _error(401, "Not signed in", f"The inbox could not tell who you are: {err}.")
            except ForbiddenError as err:
                log.warning("inbox request refused", reason=str(err), path=request.url.path)
                response = _error(403, "Refused", str(err))
            except (RPCError, ListingError) as err:
                response = _error(502, "Temporal did not answer", str(err))
            response.headers.update(SECURITY_HEADERS)
            return response

        return endpoint

    async def inbox(request: Request, person: Person) -> Response:
        return _html("inbox.html", person, gatekeeper, **await _listing(request, person, runs))

    async def inbox_part(request: Request, person: Person) -> Response:
        return _html("calls.html", person, gatekeeper, **await _listing(request, person, runs))

    async def call(request: Request, person: Person) -> Response:
        return await _call_page(request, person, runs, gatekeeper)

    async def decide(request: Request, person: Person) -> Response:
        return await _decide(request, person, runs, gatekeeper)

    async def run(request: Request, person: Person) -> Response:
        workflow_id = request.query_params.get("wf", "")
        found = await runs.run(workflow_id)
        return _html(
            "run.html",
            person,
            gatekeeper,
            run=found,
            audit=[_audit_row(e.model_dump(mode="json")) for e in found.audit],
            decided=request.query_params.get("decided"),
        )

    async def audit(request: Request, person: Person) -> Response:
        filters = {name: request.query_params.get(name, "").strip() for name in ("agent", "decided_by", "tool")}
        if filters["agent"] and not AGENT_NAME.match(filters["agent"]):
            return _error(400, "Bad filter", "not an agent name")
        if filters["decided_by"] and not NAME.match(filters["decided_by"]):
            return _error(400, "Bad filter", "not a name")
        rows = await runs.search(
            agent=filters["agent"] or None, decided_by=filters["decided_by"] or None, tool=filters["tool"] or None
        )
        export = request.query_params.get("format")
        if export == "json":
            return JSONResponse(rows, headers={"Content-Disposition": 'attachment; filename="airlock-audit.json"'})
        if export == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: _csv_safe(v) for k, v in row.items()} for row in rows)
            return Response(
                out.getvalue(),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="airlock-audit.csv"'},
            )
        query = urlencode({k: v for k, v in filters.items() if v})
        return _html("audit.html", person, gatekeeper, filters=filters, rows=[_audit_row(r) for r in rows], query=query)

    async def input_request(request: Request, person: Person) -> Response:
        # A run's input request (elicitation): a form rendered from its requested schema, answered
        # with the `answer` update, signed by the inbox for the person like a decision.
        if request.method == "POST":
            return await _answer(request, person, runs, gatekeeper)
        return await _input_page(request, person, runs, gatekeeper)

    hub = live.Hub(runs.client)
    watcher = live.Watcher(hub)

    async def calls_events(request: Request, person: Person) -> Response:
        # The inbox page's wake-up: each `calls` event means "fetch the listing again" (console/inbox/live.py).
        async def stream() -> AsyncIterator[str]:
            async for version in watcher.changes():
                yield ": keepalive\n\n" if version is None else live.sse("calls", str(version))

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def run_events(request: Request, person: Person) -> Response:
        # One run's events from an offset on: `after`, or the browser's `Last-Event-ID` when it reconnects.
        workflow_id = request.query_params.get("wf", "")
        after = _offset(request.headers.get("last-event-id"), plus=1) or _offset(request.query_params.get("after"))
        return StreamingResponse(
            live.run_stream(hub, workflow_id, after), media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def run_events_json(request: Request, person: Person) -> Response:
        # For clients in any language: the kept events from `after` on, and the offset to ask for next.
        workflow_id, after = request.query_params.get("wf", ""), _offset(request.query_params.get("after"))
        page = await events_after(runs.client, workflow_id, after)
        return Response(page.model_dump_json(), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain", headers=SECURITY_HEADERS)

    return Starlette(
        routes=[
            Route("/", page(inbox)),
            Route("/calls", page(inbox_part)),
            Route("/call", page(call)),
            Route("/decide", page(decide), methods=["POST"]),
            Route("/run", page(run)),
            Route("/audit", page(audit)),
            Route("/input", page(input_request), methods=["GET", "POST"]),
            Route("/events", page(run_events)),
            Route("/events.json", page(run_events_json)),
            Route("/calls/events", page(calls_events)),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )


async def _listing(request: Request, person: Person, runs: Runs) -> dict[str, Any]:
    agent = request.query_params.get("agent", "").strip()
    mine = request.query_params.get("mine") == "1"
    if agent and not AGENT_NAME.match(agent):
        agent = ""
    number = request.query_params.get("page", "1")
    page = int(number) if number.isascii() and number.isdigit() and 0 < len(number) <= 6 and int(number) > 0 else 1
    calls, total = await runs.waiting_page(person.name, agent=agent or None, mine=mine, page=page, per_page=PER_PAGE)
    pages = max(-(-total // PER_PAGE), 1)
    if page > pages:  # the list shrank under the person's page: show its last page
        page = pages
        calls, total = await runs.waiting_page(
            person.name, agent=agent or None, mine=mine, page=page, per_page=PER_PAGE
        )
    now = datetime.now(UTC)
    rows = [
        {
            **call,
            "tool_name": f"{call['server']}.{call['tool']}",
            "waited": age(now - _parse(call["requested_at"])),
            "deadline_text": until(_parse(call["deadline"]) if call.get("deadline") else None, now),
            "link": ("/input?" if call.get("kind") == "input" else "/call?")
            + urlencode({"wf": call["workflow_id"], "call": call["call_id"]}),
            "needs_text": "answer" if call.get("kind") == "input" else call.get("approvals_needed"),
            "args_text": (
                f"asks: {call['question']['message']}"
                if call.get("kind") == "input" and call.get("question")
                else _one_line(call["arguments"])
            ),
        }
        for call in calls
    ]
    agents = sorted({c["agent"] for c in calls} | ({agent} if agent else set()))
    filters = [("agent", agent), ("mine", "1" if mine else "")]
    query = urlencode({k: v for k, v in [*filters, ("page", str(page) if page > 1 else "")] if v})

    def page_link(number: int) -> str:
        return "/?" + urlencode({k: v for k, v in [*filters, ("page", str(number))] if v})

    return {
        "calls": rows,
        "agent": agent,
        "mine": mine,
        "agents": agents,
        "query": query,
        "total": total,
        "page": page,
        "pages": pages,
        "previous_page": page_link(page - 1) if page > 1 else None,
        "next_page": page_link(page + 1) if page < pages else None,
    }


async def _call_page(
    request: Request,
    person: Person,
    runs: Runs,
    gatekeeper: Gatekeeper,
    *,
    status: int = 200,
    message: str | None = None,
    edit_text: str | None = None,
    diff: list[tuple[str, str]] | None = None,
) -> Response:
    workflow_id = request.query_params.get("wf", "")
    call_id = request.query_params.get("call", "")
    details = await runs.details(workflow_id, call_id)
    run = await runs.run(workflow_id) if details is not None else None
    if details is None:
        return _gone(person, gatekeeper, workflow_id, call_id, status=status, message=message)
    # The pages show the reply as JSON (times as the run wrote them), as they always have.
    pending = details.pending.model_dump(mode="json")
    pretty = json.dumps(pending["arguments"], indent=2, sort_keys=True, ensure_ascii=False)
    return _html(
        "call.html",
        person,
        gatekeeper,
        status=status,
        workflow_id=workflow_id,
        details=details,
        pending=pending,
        arguments_html=json_html(pending["arguments"]),
        pretty=pretty,
        schema=json.dumps(details.input_schema, indent=2, sort_keys=True),
        decidable=may_decide(person.name, details),
        message=message,
        edit_text=edit_text or pretty,
        diff=diff,
        audit=[_audit_row(e.model_dump(mode="json")) for e in (run.audit if run else [])],
        run_link="/run?" + urlencode({"wf": workflow_id}),
    )


async def _decide(request: Request, person: Person, runs: Runs, gatekeeper: Gatekeeper) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return _error(413, "Too large", "the form is larger than the inbox accepts")
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    gatekeeper.check_csrf(person, values.get("csrf", ""))
    workflow_id, call_id = values.get("wf", ""), values.get("call", "")
    action = values.get("action", "")
    request.scope["query_string"] = urlencode({"wf": workflow_id, "call": call_id}).encode()
    edit: dict[str, Any] | None = None
    edit_text = values.get("arguments")
    if action in ("preview", "approve_edit"):
        try:
            parsed = json.loads(edit_text or "")
        except json.JSONDecodeError as err:
            return await _call_page(
                request,
                person,
                runs,
                gatekeeper,
                status=400,
                edit_text=edit_text,
                message=f"The edited arguments are not JSON: {err.msg} (line {err.lineno}).",
            )
        if not isinstance(parsed, dict):
            return await _call_page(
                request,
                person,
                runs,
                gatekeeper,
                status=400,
                edit_text=edit_text,
                message="The edited arguments must be one JSON object.",
            )
        edit = parsed
    if action == "preview":
        details = await runs.details(workflow_id, call_id)
        if details is not None:
            problems = schema_errors(details.input_schema, edit)
            if problems:
                return await _call_page(
                    request,
                    person,
                    runs,
                    gatekeeper,
                    status=400,
                    edit_text=edit_text,
                    message="The edit does not match the tool's schema: " + "; ".join(problems),
                )
            before = json.dumps(details.pending.arguments, indent=2, sort_keys=True, ensure_ascii=False)
            after = json.dumps(edit, indent=2, sort_keys=True, ensure_ascii=False)
            return await _call_page(
                request,
                person,
                runs,
                gatekeeper,
                edit_text=after,
                diff=_diff(before, after),
                message="Check the change below, then approve with these edits.",
            )
    decision = {"approve": "approve", "approve_edit": "approve", "reject": "reject"}.get(action)
    if decision is None:
        return _error(400, "Bad request", "unknown action")
    reason = values.get("reason", "").strip()
    if decision == "reject" and not reason:
        return await _call_page(request, person, runs, gatekeeper, status=400, message="A rejection needs a reason.")
    try:
        record = await runs.decide(
            person.name,
            workflow_id,
            call_id,
            seen_sha256=values.get("sha256", ""),
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
            edit=edit,
        )
    except DecisionNotRecordedError as err:
        log.warning(
            "inbox decision refused", workflow_id=workflow_id, call_id=call_id, approver=person.name, reason=str(err)
        )
        return await _call_page(
            request, person, runs, gatekeeper, status=403, edit_text=edit_text, message=f"Refused: {err}"
        )
    log.info(
        "inbox decision sent",
        workflow_id=workflow_id,
        call_id=call_id,
        approver=person.name,
        decision=record.decision,
        identity=record.identity,
    )
    target = "/run?" + urlencode({"wf": workflow_id, "decided": call_id})
    return RedirectResponse(target, status_code=303)


async def _input_page(
    request: Request,
    person: Person,
    runs: Runs,
    gatekeeper: Gatekeeper,
    *,
    status: int = 200,
    message: str | None = None,
) -> Response:
    workflow_id = request.query_params.get("wf", "")
    call_id = request.query_params.get("call", "")
    details = await runs.details(workflow_id, call_id)
    if details is None or details.pending.kind != "input" or details.pending.question is None:
        return _gone(person, gatekeeper, workflow_id, call_id, status=status, message=message)
    pending = details.pending.model_dump(mode="json")
    question = pending["question"]
    return _html(
        "input.html",
        person,
        gatekeeper,
        status=status,
        workflow_id=workflow_id,
        details=details,
        pending=pending,
        question=question,
        fields=forms.fields_of(question.get("requested_schema") or {}),
        arguments_html=json_html(pending["arguments"]),
        decidable=may_decide(person.name, details),
        message=message,
        run_link="/run?" + urlencode({"wf": workflow_id}),
    )


async def _answer(request: Request, person: Person, runs: Runs, gatekeeper: Gatekeeper) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return _error(413, "Too large", "the form is larger than the inbox accepts")
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    first = {key: items[0] for key, items in values.items()}
    gatekeeper.check_csrf(person, first.get("csrf", ""))
    workflow_id, call_id = first.get("wf", ""), first.get("call", "")
    request.scope["query_string"] = urlencode({"wf": workflow_id, "call": call_id}).encode()
    action = first.get("action", "")
    if action not in ("accept", "decline", "cancel"):
        return _error(400, "Bad request", "unknown action")
    content: dict[str, Any] | None = None
    if action == "accept" and first.get("mode") != "url":
        details = await runs.details(workflow_id, call_id)
        question = details.pending.question if details is not None else None
        schema = question.requested_schema if question is not None else None
        try:
            content = forms.content_of(forms.fields_of(schema or {}), values)
        except forms.FormError as err:
            return await _input_page(request, person, runs, gatekeeper, status=400, message=f"Not sent: {err}")
    try:
        record = await runs.answer(
            person.name,
            workflow_id,
            call_id,
            seen_sha256=first.get("sha256", ""),
            action=action,  # type: ignore[arg-type]
            content=content,
        )
    except DecisionNotRecordedError as err:
        log.warning(
            "inbox answer refused", workflow_id=workflow_id, call_id=call_id, approver=person.name, reason=str(err)
        )
        return await _input_page(request, person, runs, gatekeeper, status=403, message=f"Refused: {err}")
    log.info(
        "inbox answer sent",
        workflow_id=workflow_id,
        call_id=call_id,
        approver=person.name,
        action=record.action,
        identity=record.identity,
    )
    return RedirectResponse("/run?" + urlencode({"wf": workflow_id, "decided": call_id}), status_code=303)


def _gone(
    person: Person, gatekeeper: Gatekeeper, workflow_id: str, call_id: str, *, status: int, message: str | None
) -> Response:
    """The page for a call that no longer waits (decided, answered, or never there)."""
    return _html(
        "gone.html",
        person,
        gatekeeper,
        status=404 if status == 200 else status,
        workflow_id=workflow_id,
        call_id=call_id,
        message=message,
        run_link="/run?" + urlencode({"wf": workflow_id}),
    )


def _offset(text: str | None, *, plus: int = 0) -> int:
    """A stream offset from a query parameter or header; 0 when absent or not one."""
    if text is None or not text.strip().isdigit():
        return 0
    return int(text) + plus


def _html(name: str, person: Person, gatekeeper: Gatekeeper, *, status: int = 200, **context: Any) -> HTMLResponse:
    body = templates.get_template(name).render(person=person, csrf=gatekeeper.csrf_token(person), **context)
    return HTMLResponse(body, status_code=status)


def _error(status: int, title: str, text: str) -> HTMLResponse:
    body = templates.get_template("error.html").render(person=None, title=title, text=text, status=status)
    return HTMLResponse(body, status_code=status)


def json_html(value: Any, indent: int = 0) -> Markup:
    """Pretty JSON as escaped HTML, with long strings folded into a <details> element."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return Markup("{}")
        inner = ",\n".join(
            f'{pad}  <span class="k">{marked_html(json.dumps(k, ensure_ascii=False))}</span>: '
            f"{json_html(v, indent + 1)}"
            for k, v in sorted(value.items())
        )
        return Markup("{\n" + inner + f"\n{pad}}}")
    if isinstance(value, list):
        if not value:
            return Markup("[]")
        inner = ",\n".join(f"{pad}  {json_html(v, indent + 1)}" for v in value)
        return Markup("[\n" + inner + f"\n{pad}]")
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and len(text) > FOLD_CHARS:
        return Markup(
            f'<details class="fold"><summary><span class="s">{marked_html(text[:FOLD_CHARS])}</span>… '
            f'<em>({len(value)} characters)</em></summary><span class="s">{marked_html(text)}</span></details>'
        )
    css = "s" if isinstance(value, str) else "n"
    return Markup(f'<span class="{css}">{marked_html(text)}</span>')


def _diff(before: str, after: str) -> list[tuple[str, str]]:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "pending", "edited", lineterm="", n=2)
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    # The two file-name lines of a unified diff say nothing here; the hunks are the change.
    return [(kinds.get(line[:1], "same"), line) for line in lines if not line.startswith(("---", "+++"))]


def _audit_row(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        "at_text": _at(entry.get("at")),
        "tool_name": f"{entry['server']}.{entry['tool']}" if entry.get("server") else (entry.get("tool") or ""),
    }


def _at(value: Any) -> str:
    if not value:
        return "-"
    return _parse(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _one_line(arguments: Any) -> str:
    text = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


def _csv_safe(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula; models and senders chose these.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
