"""A stdio MCP proxy that holds one tool call, so a test can act while the call is in flight.

    python -m tests.support.stdio_hold_proxy --hold TEXT --log FILE -- COMMAND [ARG...]

It starts COMMAND (the real MCP server) and copies newline-delimited JSON-RPC between its own
stdin/stdout (the client) and the server. The first `tools/call` request containing TEXT is
swallowed, neither forwarded nor answered, and `held` is appended to FILE; once FILE says so,
later matching calls (from this proxy or a new one started after a worker restart) pass through
and are noted as `passed`. FILE also records each proxy's `pid`, so a test can check none is left.
When the client goes away (stdin closes) the proxy ends the server and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

# MCP messages are single lines; results can be large.
LINE_LIMIT = 1 << 24
SERVER_EXIT_S = 5.0


def note(log: Path, line: str) -> None:
    """Append one line to the log, at once (the test reads it while the proxy runs)."""
    with log.open("a") as out:
        out.write(line + "\n")


def held_before(log: Path) -> bool:
    """Whether some proxy already held a matching call."""
    return log.exists() and "held" in log.read_text().split()


async def proxy(hold: str, log: Path, command: list[str]) -> int:
    """Run the server behind the proxy until the client closes stdin."""
    server = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=LINE_LIMIT,
    )
    assert server.stdin is not None and server.stdout is not None
    note(log, f"pid {os.getpid()}")
    client = asyncio.StreamReader(limit=LINE_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client), sys.stdin)

    async def downstream() -> None:
        assert server.stdout is not None
        while line := await server.stdout.readline():
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()

    answers = asyncio.create_task(downstream())
    marker = hold.encode()
    while line := await client.readline():
        if b'"tools/call"' in line and marker in line:
            if not held_before(log):
                note(log, "held")
                continue
            note(log, "passed")
        server.stdin.write(line)
        await server.stdin.drain()
    server.stdin.close()
    try:
        await asyncio.wait_for(server.wait(), SERVER_EXIT_S)
    except TimeoutError:
        server.kill()
        await server.wait()
    await answers
    return 0


def main() -> None:
    """Parse the command line and proxy until the client goes away."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.stdio_hold_proxy")
    parser.add_argument("--hold", required=True, help="text that marks the tool call to hold")
    parser.add_argument("--log", required=True, type=Path, help="file noting held and passed calls")
    parser.add_argument("command", nargs="+", help="the MCP server to run behind the proxy")
    args = parser.parse_args()
    sys.exit(asyncio.run(proxy(args.hold, args.log, args.command)))


if __name__ == "__main__":
    main()
