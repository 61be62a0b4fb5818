"""Approving from Slack: a channel of the same gate, run by `airlock inbox` on the inbox host.

`Slack.bridge` keeps one message per waiting call (console/slack/bridge.py); `Slack.route` is
`POST /slack/interactions`, where a click is checked and signed as the `slack` service
(console/slack/interactions.py). docs/slack.md says how to set it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from starlette.routing import Route
from temporalio.client import Client

from console import signing
from console.inbox.runs import Runs
from console.slack.bridge import Bridge
from console.slack.config import SlackConfig, load_config
from console.slack.interactions import Interactions
from runtime.settings import Settings

__all__ = ["INTERACTIONS_PATH", "Slack", "SlackConfig", "from_settings", "load_config"]

INTERACTIONS_PATH = "/slack/interactions"


@dataclass
class Slack:
    """The Slack side of one inbox: the bridge that posts, and the endpoint that takes clicks."""

    bridge: Bridge
    interactions: Interactions

    @property
    def route(self) -> Route:
        """`POST /slack/interactions`, to mount on the inbox app."""
        return Route(INTERACTIONS_PATH, self.interactions.endpoint, methods=["POST"])


def from_settings(client: Client, settings: Settings, *, wait: timedelta = timedelta(seconds=10)) -> Slack | None:
    """The Slack side these settings configure (None: `AIRLOCK_SLACK_FILE` is not set)."""
    config = load_config(settings)
    if config is None:
        return None
    runs = Runs(client, signing.load_private_key(config.key_file), service=config.service, wait=wait)
    # Slack answers 429 with Retry-After when a workspace posts fast; the SDK waits and retries.
    retries = [ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)]
    web = WebClient(token=config.bot_token.get_secret_value(), base_url=config.api_url, retry_handlers=retries)
    bridge = Bridge(client, config, runs, web)
    return Slack(bridge, Interactions(config, runs, bridge))
