"""`python worker.py --dev`: an inbox on loopback whose decisions are really signed and verified.

The worker writes `.airlock/dev/`: a key for the inbox service, keys for alice and bob (the
bundled agents' approvers, for the CLI), and an approvers file listing them, so the gate
checks every decision from the page exactly as in production. The person is a fixed dev
identity, which every page says is not authenticated.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from console import signing
from console.inbox.server import DEV_PERSON, inbox_url
from runtime.settings import Settings

DEV_PEOPLE = ("alice", "bob")


def prepare(settings: Settings) -> Settings:
    """Settings for the dev inbox: loopback only, the dev keys, and (unless one is set) the dev approvers file."""
    directory = settings.data_dir / "dev"
    keys = {name: _key(directory / f"{name}.key") for name in ("inbox", *DEV_PEOPLE)}
    update: dict[str, object] = {"inbox_host": "127.0.0.1", "inbox_key_file": directory / "inbox.key"}
    if settings.approvers_file is None:
        entries = [signing.toml_entry(name, signing.load_private_key(keys[name])) for name in DEV_PEOPLE]
        inbox_key = signing.public_key_entry(signing.public_bytes(signing.load_private_key(keys["inbox"])))
        approvers = directory / "approvers.toml"
        approvers.write_text(
            "# Written by `python worker.py --dev`: the dev inbox signs as [services.inbox]; alice and bob\n"
            "# sign with .airlock/dev/<name>.key from the CLI.\n"
            + "\n\n".join(entries)
            + f'\n\n[services.{settings.inbox_service_name}]\nkeys = ["{inbox_key}"]\n'
            + f"may_assert = {list(DEV_PEOPLE)!r}\n".replace("'", '"')
        )
        update["approvers_file"] = approvers
    return settings.model_copy(update=update)


def _key(path: Path) -> Path:
    if not path.exists():
        signing.save_private_key(signing.generate_key(), path)
    return path


def announce(settings: Settings) -> None:
    """Print, for the person at the terminal, where to decide: the inbox link next to the CLI commands."""
    key = settings.data_dir / "dev" / f"{DEV_PERSON}.key"
    start = shlex.join(
        [
            "temporal",
            "workflow",
            "start",
            "--type",
            "AgentWorkflow",
            "--task-queue",
            settings.task_queue,
            "--input",
            '{"agent": "support", "input": "Ticket T-1 is fixed; please close it.", "requester": "svc-billing"}',
        ]
    )
    sys.stdout.write(
        f"\ninbox:     {inbox_url(settings)}   (dev identity: you are {DEV_PERSON}, not authenticated)\n"
        f"terminal:  airlock pending   then   airlock approve WORKFLOW_ID CALL_ID --sha256 HASH --as {DEV_PERSON} "
        f"--key {key}   (HASH: the arguments_sha256 `airlock show WORKFLOW_ID` prints)\n"
        f"a run that waits for you:\n  {start}\n\n"
    )
    sys.stdout.flush()
