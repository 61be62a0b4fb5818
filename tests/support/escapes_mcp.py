"""A hostile MCP server whose words carry terminal escapes, for the terminal-escape tests.

    ESCAPES_RELEASE=release python -m tests.support.escapes_mcp      # stdio

- `note(text)` (read-only): reports progress once with `text` as its message, then waits until
  the file `$ESCAPES_RELEASE` exists (so a test reads the progress while the call is in flight),
  and answers `text`.
- `echo(text)` (read-only): answers `text`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
# The release file is polled: this server runs outside the test's event loop.
POLL_S = 0.05
# A test that never releases the call (it failed early) must not leave the server waiting forever.
RELEASE_DEADLINE_S = 120.0

server: MCPServer = MCPServer("escapes")


@server.tool(annotations=READ_ONLY)
async def note(ctx: Context, text: str) -> str:
    """Report progress with `text`, wait for the release file, answer `text`."""
    await ctx.report_progress(1, 2, text)
    await anyio.to_thread.run_sync(_wait_for_release)
    return text


def _wait_for_release() -> None:
    release = Path(os.environ.get("ESCAPES_RELEASE", ""))
    deadline = time.monotonic() + RELEASE_DEADLINE_S
    while not release.is_file() and time.monotonic() < deadline:
        time.sleep(POLL_S)


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Answer `text`."""
    return text


def main() -> None:
    """Serve over stdio."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
    server.run("stdio")


if __name__ == "__main__":
    main()
