"""`airlock inbox`, `codec-server` and `check`: the operator's servers and the worker's start-up checks.

Each loads what it needs (the web stack, the worker's checks, the MCP SDK) only when it runs,
so the other commands start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from console.errors import CliError
from console.temporal import settings_for
from runtime.codec import EncryptionCodec, load_keyring
from runtime.connection import connect


async def cmd_check(args: argparse.Namespace) -> int:
    """`airlock check`, loading the worker's checks (and the MCP SDK) only when it runs."""
    from console import check

    return await check.cmd_check(args)


async def cmd_inbox(args: argparse.Namespace) -> int:
    """Serve the inbox until interrupted (console/inbox does the work)."""
    from console import inbox  # the web stack loads only for this command
    from runtime import logs

    settings = settings_for(args)
    logs.configure(settings.log_level, settings.log_format)  # stderr: stdout is for what a command prints
    overrides = {"inbox_host": args.host, "inbox_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    app = inbox.make_app(await connect(settings), settings)
    stop = _stop_on_signal()
    sys.stderr.write(f"airlock: inbox on {inbox.inbox_url(settings)}\n")
    slack = getattr(app.state, "slack", None)
    if slack is None:
        await inbox.serve(app, settings, stop)
        return 0
    from runtime.redaction import Redactor

    config = slack.bridge.config
    secrets = [config.bot_token.get_secret_value(), config.signing_secret.get_secret_value()]
    logs.configure(settings.log_level, settings.log_format, redactor=Redactor(secrets))
    sys.stderr.write("airlock: Slack approvals on (POST /slack/interactions)\n")
    await asyncio.gather(inbox.serve(app, settings, stop), slack.bridge.run(stop))
    return 0


async def cmd_codec_server(args: argparse.Namespace) -> int:
    """Serve the codec-server protocol until interrupted (console/codec_server does the work)."""
    from console import codec_server
    from console.inbox import serve  # the web stack loads only for this command
    from runtime import logs
    from runtime.redaction import Redactor

    settings = settings_for(args)
    if settings.codec_keys_file is None:
        raise CliError("the codec server needs the keys the worker encrypts with: set AIRLOCK_CODEC_KEYS_FILE")
    codec = EncryptionCodec(load_keyring(settings.codec_keys_file))
    origins = codec_server.origins(args.web_origin or settings.codec_server_origins)
    token = codec_server.token(settings, args.token_file)
    # One line per request on stderr (stdout stays empty), the token scrubbed should anything echo it.
    logs.configure(settings.log_level, settings.log_format, redactor=Redactor([token]))
    app = codec_server.make_app(
        codec, token=token, origins=origins, max_body_bytes=settings.codec_server_max_body_bytes
    )
    host = args.host or settings.codec_server_host
    port = settings.codec_server_port if args.port is None else args.port
    sock = codec_server.listen(host, port)
    stop = _stop_on_signal()
    bound = sock.getsockname()[1]
    sys.stderr.write(
        f"airlock: codec server on http://{host}:{bound} (keys {', '.join(codec.keyring.keys)}; "
        f"Web UI origins {', '.join(origins) or 'none'})\n"
    )
    await serve(app, settings, stop, sock)
    return 0


def _stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: a server stops cleanly, its port freed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
