"""What an `airlock` command writes (stdout, stderr) and asks a person at a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from console.errors import CliError
from console.render import json_text
from workflows.visible import visible, visible_lines


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Write the command's result: `data` as JSON with `-o json`, else the readable `text`."""
    write(json_text(data) if args.output == "json" else text)


def write(text: str) -> None:
    """One block of output on stdout (logs and errors go to stderr), hidden characters escaped."""
    sys.stdout.write(visible_lines(text) + "\n")


def complain(text: str) -> None:
    """One message on stderr, on one line: a reason from a run cannot forge lines or move the cursor."""
    sys.stderr.write(visible(text) + "\n")


def interactive() -> bool:
    """Whether a person is at a terminal: stdin and stdout both TTYs."""
    return sys.stdin.isatty() and sys.stdout.isatty()


async def confirm(preview: str, question: str) -> None:
    """Show `preview` on the terminal and ask `question [y/N]`; anything but yes sends nothing."""
    write(preview)
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed: nothing sent")
