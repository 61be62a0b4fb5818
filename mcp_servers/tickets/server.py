"""The tickets MCP server: typed tools over `TicketStore` on a module-level `MCPServer`."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from mcp_servers.tickets.faults import FaultInjector
from mcp_servers.tickets.store import (
    AssignResult,
    CloseResult,
    CommentResult,
    Resolution,
    Status,
    Ticket,
    TicketNotFoundError,
    TicketStore,
    TicketStoreError,
    TicketSummary,
    db_path_from_env,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_META_KEY = "airlock/idempotency_key"
"""Request `_meta` key carrying the caller's idempotency key (`<workflow_id>/<call_id>`)."""

MAX_IDEMPOTENCY_KEY_LENGTH = 512

# Declared in each write tool's `_meta` so a client can tell, before calling, that retrying with
# the same key is safe.
_WRITE_TOOL_META: dict[str, Any] = {IDEMPOTENCY_META_KEY: "supported"}

TicketId = Annotated[str, Field(pattern=r"^T-\d{1,6}$", description="Ticket id, for example T-1.")]
Person = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="A person's user name."),
]


@asynccontextmanager
async def _open_store(_: MCPServer[TicketStore]) -> AsyncGenerator[TicketStore, None]:
    store = TicketStore.open(db_path_from_env())
    logger.info("tickets store ready path=%s", store.path)
    yield store


server: MCPServer[TicketStore] = MCPServer(
    "tickets",
    title="Tickets",
    instructions=(
        "A support ticket tracker. Find tickets with search_tickets, read one with get_ticket "
        "before changing it, then comment, assign or close it."
    ),
    lifespan=_open_store,
    # Inert unless a TICKETS_FAULT* variable is set (tests only; see faults.py).
    middleware=[FaultInjector()],
)

TicketContext = Context[TicketStore, Any]


@server.tool(
    title="Search tickets",
    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
def search_tickets(
    ctx: TicketContext,
    query: Annotated[
        str,
        Field(
            max_length=200,
            description="Words that must all appear in the ticket's id, title or body; empty lists every ticket.",
        ),
    ] = "",
    status: Annotated[Status | None, Field(description="Only tickets in this status.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Most tickets to return.")] = 20,
) -> list[TicketSummary]:
    """Search tickets by words in their id, title or body, optionally by status.

    Returns id, title, status and assignee of each match, lowest id first.
    """
    return _store(ctx).search(query, status, limit)


@server.tool(
    title="Get ticket",
    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
def get_ticket(ctx: TicketContext, ticket_id: TicketId) -> Ticket:
    """Read one ticket: title, body, status, assignee, resolution and comments (oldest first)."""
    try:
        return _store(ctx).get(ticket_id)
    except TicketStoreError as exc:
        _raise_tool_error(exc)


@server.tool(
    title="Comment on ticket",
    annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    ),
    meta=_WRITE_TOOL_META,
)
async def comment_on_ticket(
    ctx: TicketContext,
    ticket_id: TicketId,
    text: Annotated[str, Field(min_length=1, max_length=4000, description="The comment, plain text.")],
    author: Person = "airlock",
) -> CommentResult:
    """Add a comment to a ticket. Every call adds a new comment."""
    try:
        result = _store(ctx).comment(ticket_id, text, author, idempotency_key=_idempotency_key(ctx))
    except TicketStoreError as exc:
        _raise_tool_error(exc)
    return result


@server.tool(
    title="Assign ticket",
    annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    ),
    meta=_WRITE_TOOL_META,
)
async def assign_ticket(ctx: TicketContext, ticket_id: TicketId, assignee: Person) -> AssignResult:
    """Assign a ticket to a person, replacing the current assignee."""
    try:
        result = _store(ctx).assign(ticket_id, assignee, idempotency_key=_idempotency_key(ctx))
    except TicketStoreError as exc:
        _raise_tool_error(exc)
    return result


@server.tool(
    title="Close ticket",
    annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    ),
    meta=_WRITE_TOOL_META,
)
async def close_ticket(
    ctx: TicketContext,
    ticket_id: TicketId,
    resolution: Annotated[Resolution, Field(description="Why the ticket is closed.")] = "fixed",
) -> CloseResult:
    """Close a ticket with a resolution. Closing a closed ticket only updates its resolution."""
    try:
        result = _store(ctx).close(ticket_id, resolution, idempotency_key=_idempotency_key(ctx))
    except TicketStoreError as exc:
        _raise_tool_error(exc)
    return result


def _store(ctx: TicketContext) -> TicketStore:
    return ctx.request_context.lifespan_context


def _idempotency_key(ctx: TicketContext) -> str | None:
    meta = ctx.request_context.meta
    if meta is None or IDEMPOTENCY_META_KEY not in meta:
        return None
    key: object = dict(meta).get(IDEMPOTENCY_META_KEY)
    if not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ToolError(
            f"_meta[{IDEMPOTENCY_META_KEY!r}] must be a non-empty string of at most "
            f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters."
        )
    return key


def _raise_tool_error(exc: TicketStoreError) -> NoReturn:
    message = str(exc)
    if isinstance(exc, TicketNotFoundError):
        message += " Use search_tickets to find existing ticket ids."
    raise ToolError(message) from exc
