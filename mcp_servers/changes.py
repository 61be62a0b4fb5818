"""Tool-list changes a server announces, whichever protocol version the session speaks.

Before 2026-07-28 a server sends `notifications/tools/list_changed`, which reaches the
connection's message handler. From 2026-07-28 on that notification is gone: a client opens a
`subscriptions/listen` stream and the server sends `ToolsListChanged` events on it. This module
holds that stream open for the life of a session (stdio only: over HTTP an open request would hold
up the server's graceful shutdown). Either way the connection only notes the change:
every run lists the tools afresh when it starts, so the next run sees the new list and its policy.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

log = structlog.get_logger(__name__)


async def watch_tools(client: Client, server: str, changed: Callable[[], None]) -> None:
    """Call `changed` whenever the server's `subscriptions/listen` stream says its tools changed.

    Returns at once on an older session (its notifications come through the message handler),
    and when the server does not offer or ends the stream; runs until cancelled otherwise.
    """
    try:
        async with client.listen(tools_list_changed=True) as subscription:
            if not subscription.honored.tools_list_changed:
                return
            async for event in subscription:
                if isinstance(event, ToolsListChanged):
                    changed()
    except ListenNotSupportedError:
        return
    except (MCPError, SubscriptionLost, TimeoutError) as err:
        # A server without subscriptions still works; only its changes go unannounced.
        log.info("mcp_listen_unavailable", server=server, error=str(err)[:200])
