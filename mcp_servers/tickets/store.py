"""SQLite store behind the tickets server: tickets, comments, and writes applied once per key."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Generator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

# typing_extensions, not typing: pydantic (which turns these into output schemas) refuses nested
# stdlib TypedDicts below Python 3.12.
from typing_extensions import TypedDict

logger = logging.getLogger(__name__)

DB_ENV_VAR = "TICKETS_DB"
"""Environment variable naming the SQLite file."""

DEFAULT_DB_PATH = Path(__file__).resolve().parents[2] / ".airlock" / "tickets.db"
"""Database file used when `TICKETS_DB` is unset: in the checkout's `.airlock/`, beside the worker's
state, wherever the server is started from (`airlock mcp` in another directory must not leave a
database there)."""

BUSY_TIMEOUT_S = 5.0
"""How long a connection waits for another process's write lock before failing."""

SCHEMA_VERSION = 1

Status = Literal["open", "in_progress", "closed"]
Resolution = Literal["fixed", "duplicate", "wont_fix", "invalid", "cannot_reproduce"]
WriteTool = Literal["comment_on_ticket", "assign_ticket", "close_ticket"]

_ResultT = TypeVar("_ResultT")


class TicketSummary(TypedDict):
    """One ticket as listed by a search."""

    id: str
    title: str
    status: Status
    assignee: str | None


class Comment(TypedDict):
    """One comment on a ticket."""

    author: str
    text: str
    at: str


class Ticket(TypedDict):
    """A ticket with its full body and comments, oldest first."""

    id: str
    title: str
    body: str
    status: Status
    assignee: str | None
    resolution: Resolution | None
    comments: list[Comment]


class CommentResult(TypedDict):
    """The comment that was added."""

    ticket_id: str
    comment: Comment


class AssignResult(TypedDict):
    """The ticket's assignee before and after the change."""

    ticket_id: str
    assignee: str
    previous_assignee: str | None


class CloseResult(TypedDict):
    """The ticket's status before and after closing it."""

    ticket_id: str
    status: Status
    resolution: Resolution
    previous_status: Status


class TicketStoreError(Exception):
    """A request the store refuses; the message is safe to show to the caller."""


class TicketNotFoundError(TicketStoreError):
    """No ticket has the requested id."""


class IdempotencyKeyReusedError(TicketStoreError):
    """An idempotency key came back with a different tool or different arguments."""


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tickets (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'closed')),
        assignee TEXT,
        resolution TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS comments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket_id TEXT NOT NULL REFERENCES tickets (id),
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS comments_by_ticket ON comments (ticket_id, id)",
    # One row per applied write, so tests and operators can count what really happened.
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        idempotency_key TEXT,
        at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        tool TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
)

_SEED_TICKETS: tuple[tuple[str, str, str, Status, str | None, Resolution | None, str], ...] = (
    (
        "T-1",
        "Login page returns 500 after password reset",
        "After resetting a password through the emailed link, the redirect to /login fails with "
        "HTTP 500. The API log shows KeyError: 'reset_token' in the session middleware. Started "
        "with the 2025-01-06 deploy; every user who resets a password is affected.",
        "open",
        None,
        None,
        "2025-01-07T08:12:00Z",
    ),
    (
        "T-2",
        "CSV export drops rows with non-ASCII customer names",
        "Exporting the customer list to CSV silently skips customers whose names contain "
        "characters such as é or ø. 37 of 1,204 rows are missing in the export attached by ACME.",
        "in_progress",
        "bob",
        None,
        "2025-01-08T14:30:00Z",
    ),
    (
        "T-3",
        "Invoice PDF shows the wrong VAT rate for Austria",
        "Invoices for customers in Austria print a VAT rate of 19% instead of 20%. The total is "
        "computed correctly; only the label on the PDF is wrong.",
        "open",
        "alice",
        None,
        "2025-01-09T10:05:00Z",
    ),
    (
        "T-4",
        "Add dark mode to the settings page",
        "Several customers asked for a dark theme. Start with the settings page; it has the fewest custom components.",
        "open",
        None,
        None,
        "2025-01-10T16:45:00Z",
    ),
    (
        "T-5",
        "Password reset emails delayed by up to 20 minutes",
        "Reset emails queued behind the nightly newsletter batch. Moved transactional mail to its own queue.",
        "closed",
        "carol",
        "fixed",
        "2025-01-03T09:20:00Z",
    ),
)

_SEED_COMMENTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "T-1",
        "support",
        "Three customers reported this today, all right after a reset.",
        "2025-01-07T09:02:00Z",
    ),
    (
        "T-2",
        "bob",
        "Reproduced: the writer opens the file as ASCII. Fix in review.",
        "2025-01-09T11:00:00Z",
    ),
    (
        "T-5",
        "carol",
        "Deployed the separate queue; p99 delivery is now 40 s.",
        "2025-01-04T15:10:00Z",
    ),
)


def db_path_from_env(env: Mapping[str, str] | None = None) -> Path:
    """Return the database path named by `TICKETS_DB`, or the default in the checkout's `.airlock/`."""
    environ = os.environ if env is None else env
    return Path(environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH).resolve()


def count_writes(db_path: str | os.PathLike[str], kind: str | None = None) -> int:
    """Count writes applied to a database file, optionally only those of one tool.

    Reads the file directly, so tests can check from outside what a server process really did.

    Args:
        db_path: The SQLite file a tickets server uses.
        kind: A write tool name (`close_ticket`, ...); `None` counts every write.

    Returns:
        The number of applied writes; replays of an idempotency key are not counted.
    """
    with closing(_connect(Path(db_path))) as conn:
        if kind is None:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        else:
            row = conn.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()
    return int(row[0])


class TicketStore:
    """Tickets in one SQLite file that several server processes can share.

    Every method opens its own short connection: the MCP SDK runs sync tools on worker threads,
    and SQLite connections must not be shared across threads.
    """

    def __init__(self, path: Path) -> None:
        """Use an existing, initialized database file; prefer `TicketStore.open`."""
        self.path = path

    @classmethod
    def open(cls, path: Path) -> TicketStore:
        """Create the file, its schema and the seed tickets where missing, and return the store."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(_connect(path)) as conn:
            # WAL lets readers in other processes (stdio and HTTP instances) go on while one writes.
            conn.execute("PRAGMA journal_mode = WAL")
            with _transaction(conn, write=True):
                for statement in _SCHEMA:
                    conn.execute(statement)
                (count,) = conn.execute("SELECT COUNT(*) FROM tickets").fetchone()
                if count == 0:
                    _seed(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return cls(path)

    def search(self, query: str = "", status: Status | None = None, limit: int = 20) -> list[TicketSummary]:
        """Return tickets whose id, title or body contain every word of `query`, lowest id first."""
        clauses: list[str] = []
        params: list[Any] = []
        for word in query.split():
            pattern = "%" + _escape_like(word) + "%"
            clauses.append("(id = ? COLLATE NOCASE OR title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')")
            params.extend((word, pattern, pattern))
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = " AND ".join(clauses) or "1"
        sql = (
            "SELECT id, title, status, assignee FROM tickets WHERE "
            + where
            + " ORDER BY CAST(SUBSTR(id, 3) AS INTEGER) LIMIT ?"
        )
        params.append(limit)
        with self._connection() as conn, _transaction(conn, write=False):
            rows = conn.execute(sql, params).fetchall()
        return [TicketSummary(id=r["id"], title=r["title"], status=r["status"], assignee=r["assignee"]) for r in rows]

    def get(self, ticket_id: str) -> Ticket:
        """Return one ticket with its comments.

        Raises:
            TicketNotFoundError: No ticket has this id.
        """
        with self._connection() as conn, _transaction(conn, write=False):
            row = _require_ticket(conn, ticket_id)
            comments = conn.execute(
                "SELECT author, text, at FROM comments WHERE ticket_id = ? ORDER BY id",
                (ticket_id,),
            ).fetchall()
        return Ticket(
            id=row["id"],
            title=row["title"],
            body=row["body"],
            status=row["status"],
            assignee=row["assignee"],
            resolution=row["resolution"],
            comments=[Comment(author=c["author"], text=c["text"], at=c["at"]) for c in comments],
        )

    def comment(self, ticket_id: str, text: str, author: str, *, idempotency_key: str | None = None) -> CommentResult:
        """Add a comment to a ticket, at most once per idempotency key.

        Raises:
            TicketNotFoundError: No ticket has this id.
            IdempotencyKeyReusedError: The key was first used for a different call.
        """

        def apply(conn: sqlite3.Connection, now: str) -> CommentResult:
            _require_ticket(conn, ticket_id)
            conn.execute(
                "INSERT INTO comments (ticket_id, author, text, at) VALUES (?, ?, ?, ?)",
                (ticket_id, author, text, now),
            )
            conn.execute("UPDATE tickets SET updated_at = ? WHERE id = ?", (now, ticket_id))
            return CommentResult(ticket_id=ticket_id, comment=Comment(author=author, text=text, at=now))

        arguments = {"ticket_id": ticket_id, "text": text, "author": author}
        return self._write("comment_on_ticket", arguments, idempotency_key, apply)

    def assign(self, ticket_id: str, assignee: str, *, idempotency_key: str | None = None) -> AssignResult:
        """Set a ticket's assignee, at most once per idempotency key.

        Raises:
            TicketNotFoundError: No ticket has this id.
            IdempotencyKeyReusedError: The key was first used for a different call.
        """

        def apply(conn: sqlite3.Connection, now: str) -> AssignResult:
            row = _require_ticket(conn, ticket_id)
            conn.execute(
                "UPDATE tickets SET assignee = ?, updated_at = ? WHERE id = ?",
                (assignee, now, ticket_id),
            )
            return AssignResult(ticket_id=ticket_id, assignee=assignee, previous_assignee=row["assignee"])

        arguments = {"ticket_id": ticket_id, "assignee": assignee}
        return self._write("assign_ticket", arguments, idempotency_key, apply)

    def close(self, ticket_id: str, resolution: Resolution, *, idempotency_key: str | None = None) -> CloseResult:
        """Close a ticket with a resolution, at most once per idempotency key.

        Raises:
            TicketNotFoundError: No ticket has this id.
            IdempotencyKeyReusedError: The key was first used for a different call.
        """

        def apply(conn: sqlite3.Connection, now: str) -> CloseResult:
            row = _require_ticket(conn, ticket_id)
            conn.execute(
                "UPDATE tickets SET status = 'closed', resolution = ?, updated_at = ? WHERE id = ?",
                (resolution, now, ticket_id),
            )
            return CloseResult(
                ticket_id=ticket_id,
                status="closed",
                resolution=resolution,
                previous_status=row["status"],
            )

        arguments = {"ticket_id": ticket_id, "resolution": resolution}
        return self._write("close_ticket", arguments, idempotency_key, apply)

    def _write(
        self,
        tool: WriteTool,
        arguments: dict[str, str],
        idempotency_key: str | None,
        apply: Callable[[sqlite3.Connection, str], _ResultT],
    ) -> _ResultT:
        """Apply one write, or replay the stored result of the first call with the same key."""
        fingerprint = hashlib.sha256(
            json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True).encode()
        ).hexdigest()
        ticket_id = arguments["ticket_id"]
        # One IMMEDIATE transaction holds the write lock from the key lookup to the commit, so two
        # processes racing on one key serialize, and a crash leaves neither the write nor the key.
        with self._connection() as conn, _transaction(conn, write=True):
            replayed = _stored_result(conn, idempotency_key, tool, fingerprint)
            if replayed is not None:
                result = cast(_ResultT, replayed)
            else:
                now = _now()
                result = apply(conn, now)
                conn.execute(
                    "INSERT INTO events (kind, ticket_id, idempotency_key, at) VALUES (?, ?, ?, ?)",
                    (tool, ticket_id, idempotency_key, now),
                )
                if idempotency_key is not None:
                    conn.execute(
                        "INSERT INTO idempotency_keys (key, tool, fingerprint, result, at) VALUES (?, ?, ?, ?, ?)",
                        (idempotency_key, tool, fingerprint, json.dumps(result), now),
                    )
        logger.info(
            "write %s tool=%s ticket_id=%s idempotency_key=%s",
            "replayed" if replayed is not None else "applied",
            tool,
            ticket_id,
            idempotency_key,
        )
        return result

    @contextmanager
    def _connection(self) -> Generator[sqlite3.Connection, None, None]:
        with closing(_connect(self.path)) as conn:
            yield conn


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun explicitly, so each call controls its own.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool) -> Generator[None, None, None]:
    # IMMEDIATE takes the write lock up front; a deferred transaction that later upgrades can fail
    # with SQLITE_BUSY in WAL mode without waiting for the busy timeout.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _stored_result(conn: sqlite3.Connection, key: str | None, tool: WriteTool, fingerprint: str) -> object | None:
    if key is None:
        return None
    row = conn.execute("SELECT tool, fingerprint, result FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    if row["fingerprint"] != fingerprint:
        raise IdempotencyKeyReusedError(
            f"Idempotency key {key!r} was already used for a different call "
            f"({row['tool']} with other arguments); use a new key for a new call."
        )
    return cast(object, json.loads(row["result"]))


def _require_ticket(conn: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
    row = cast(
        "sqlite3.Row | None",
        conn.execute(
            "SELECT id, title, body, status, assignee, resolution FROM tickets WHERE id = ?",
            (ticket_id,),
        ).fetchone(),
    )
    if row is None:
        raise TicketNotFoundError(f"Ticket {ticket_id} does not exist.")
    return row


def _seed(conn: sqlite3.Connection) -> None:
    conn.executemany(
        "INSERT INTO tickets"
        " (id, title, body, status, assignee, resolution, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*ticket, ticket[-1]) for ticket in _SEED_TICKETS],
    )
    conn.executemany("INSERT INTO comments (ticket_id, author, text, at) VALUES (?, ?, ?, ?)", _SEED_COMMENTS)
    logger.info("seeded tickets count=%d", len(_SEED_TICKETS))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
