"""The anchor worker: Temporal's `OpenAIAgentsPlugin` hosting `AnchorAgentWorkflow` (run in the anchor venv).

    bench/.anchor-venv/bin/python bench/anchor/worker.py --address 127.0.0.1:7233 --task-queue Q \\
        --script script.json --tickets-db anchor.db --mcp-python .venv/bin/python

The model is the benchmark's script played by `activities.models.ScriptedModel` behind an SDK
`ModelProvider` (the plugin runs it in its own model activity); the tools come from the bundled
`tickets` server over stdio, through the plugin's MCP support. PYTHONPATH must hold the repository
root and bench/ (the bench sets it). Logs one JSON line `"worker ready"` on stderr when polling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from agents import set_tracing_disabled
from agents.mcp import MCPServerStdio
from anchor_workflow import TICKETS, AnchorAgentWorkflow
from mcp.client.stdio import get_default_environment
from sdk_model import ScriptedProvider
from temporalio.client import Client
from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin
from temporalio.worker import Worker

from activities.models import ScriptedModel, load_script

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def _log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), file=sys.stderr, flush=True)


def tickets_factory(python: str, db: Path) -> Any:
    """The worker-side stdio server: the same command, module and database layout as the other sides."""

    def factory() -> MCPServerStdio:
        return MCPServerStdio(
            {
                "command": python,
                "args": ["-m", "mcp_servers.tickets"],
                "env": get_default_environment() | {"TICKETS_DB": str(db)},
                "cwd": str(REPO_ROOT),
            },
            name=TICKETS,
            client_session_timeout_seconds=30,
        )

    return factory


async def main(args: argparse.Namespace) -> None:
    """Connect, run the worker until SIGTERM or SIGINT, then shut it down."""
    set_tracing_disabled(True)
    plugin = OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=60)),
        model_provider=ScriptedProvider(ScriptedModel(load_script(args.script))),
        mcp_servers={TICKETS: tickets_factory(args.mcp_python, args.tickets_db)},
    )
    client = await Client.connect(args.address, plugins=[plugin])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=args.task_queue, workflows=[AnchorAgentWorkflow]):
        _log("worker ready", task_queue=args.task_queue)
        await stop.wait()
    _log("worker stopped")


def parse_args() -> argparse.Namespace:
    """Command-line flags (the bench passes them all)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--tickets-db", type=Path, required=True)
    parser.add_argument("--mcp-python", required=True, help="interpreter that runs the tickets server")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
