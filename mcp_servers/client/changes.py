"""Tool-list changes a server announces, whichever protocol version the session speaks.

Before 2026-07-28 a server sends `notifications/tools/list_changed`, which reaches the
connection's message handler. From 2026-07-28 on that notification is gone: a client opens a
`subscriptions/listen` stream and the server sends `ToolsListChanged` events on it. This module
holds that stream open for the life of a session (stdio only: over HTTP an open request would hold
up the server's graceful shutdown), and says whether the session will hear a change at all. A
connection keeps its tool list only while it would hear the change: a run starts with the list as
the server last announced it, and a server that cannot announce is listed afresh for every run.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

log = structlog.get_logger(__name__)


async def watch_tools(
    client: Client,
    server: str,
    changed: Callable[[], None],
    hearing: Callable[[bool], None],
) -> None:
    """Call `changed` whenever the server says its tools changed, and `hearing` with whether it can.

    On an older session a change comes as a notification to the message handler, if the server
    declared it sends them (`tools.listChanged`); this returns at once then. On a newer one this
    holds the server's `subscriptions/listen` stream until cancelled, and hearing ends with it.
    """
    try:
        async with client.listen(tools_list_changed=True) as subscription:
            if not subscription.honored.tools_list_changed:
                return
            hearing(True)
            try:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        changed()
            finally:
                hearing(False)
    except ListenNotSupportedError:
        tools = client.server_capabilities.tools
        hearing(tools is not None and tools.list_changed is True)
    except (MCPError, SubscriptionLost, TimeoutError) as err:
        # A server without subscriptions still works; only its changes go unannounced.
        log.info("mcp_listen_unavailable", server=server, error=str(err)[:200])
