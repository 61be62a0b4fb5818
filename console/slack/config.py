"""`slack.toml` and the Slack settings: which channel shows which agent's calls, and the secrets.

The file (setting `AIRLOCK_SLACK_FILE`) lives on the inbox host, never with the agents: an
agent's TOML is data the worker reads, and a channel is where people work, not what an agent is.
The bot token and the signing secret come from `AIRLOCK_SLACK_BOT_TOKEN` /
`AIRLOCK_SLACK_SIGNING_SECRET`, or from files the TOML names; they are kept as `SecretStr` and
handed to the Slack client and the signature check only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mcp_servers.tomlfiles import ConfigError, read_toml, validate
from runtime.settings import Settings

SLACK_API = "https://slack.com/api/"
# Where Slack's `response_url`s point: the bridge answers a click only there (or at the
# configured API's own host, a stand-in under test), never at a URL a payload names elsewhere.
SLACK_HOOKS = "https://hooks.slack.com/"
# A channel as chat.postMessage takes it: an id (C…, G…) or a `#name`.
CHANNEL = re.compile(r"(?:[CGD][A-Z0-9]{2,31}|#[a-z0-9][a-z0-9_-]{0,79})\Z")


class SlackFile(BaseModel):
    """What `slack.toml` may say (every key is optional but `key_file` and a channel)."""

    model_config = ConfigDict(extra="forbid")

    # Default channel for agents `[channels]` does not name; none: only the named agents are posted.
    channel: str | None = None
    channels: dict[str, str] = Field(default_factory=dict)
    # The Ed25519 key of `[services.<service>]` in approvers.toml; Slack decisions are signed with it.
    key_file: Path
    service: str = "slack"
    # The inbox's public URL, for the "Open in the inbox" button; none: no button.
    inbox_url: str | None = None
    # Where the bridge remembers which message shows which call (default: <data dir>/slack-messages.json).
    state_file: Path | None = None
    interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    api_url: str = SLACK_API
    bot_token_file: Path | None = None
    signing_secret_file: Path | None = None


@dataclass(frozen=True)
class SlackConfig:
    """Everything the Slack bridge and the interaction endpoint need, checked."""

    channel: str | None
    channels: dict[str, str]
    key_file: Path
    service: str
    inbox_url: str | None
    state_file: Path
    interval_seconds: float
    api_url: str
    approvers_file: Path
    bot_token: SecretStr = field(repr=False)
    signing_secret: SecretStr = field(repr=False)

    def channel_for(self, agent: str) -> str | None:
        """The channel that shows `agent`'s calls (None: this agent's calls are not posted)."""
        return self.channels.get(agent, self.channel)

    def may_answer_at(self, url: str) -> bool:
        """Whether `url` is a Slack `response_url` the endpoint may post its answer to."""
        parts = urlsplit(url)
        if url.startswith(SLACK_HOOKS):
            return True
        api = urlsplit(self.api_url)
        return self.api_url != SLACK_API and (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def load_config(settings: Settings) -> SlackConfig | None:
    """The Slack configuration these settings name, or None when Slack is off (no `AIRLOCK_SLACK_FILE`)."""
    path = settings.slack_file
    if path is None:
        return None
    data: dict[str, Any] = read_toml(path)
    file = validate(SlackFile, data, path=path)
    here = path.parent
    if file.channel is None and not file.channels:
        raise ConfigError(f'{path}: say where calls go: `channel = "#approvals"` or a `[channels]` table')
    for where, value in [("channel", file.channel), *((f"channels.{a}", c) for a, c in file.channels.items())]:
        if value is not None and not CHANNEL.match(value):
            raise ConfigError(f"{path}: key '{where}': {value!r} is not a channel id (C0123ABCD) or #name")
    if settings.approvers_file is None:
        raise ConfigError(
            "approving from Slack needs the approvers file (AIRLOCK_APPROVERS_FILE): it maps Slack ids to people"
        )
    if file.inbox_url is not None and urlsplit(file.inbox_url).scheme not in ("http", "https"):
        raise ConfigError(f"{path}: key 'inbox_url': {file.inbox_url!r} is not an http(s) URL")
    return SlackConfig(
        channel=file.channel,
        channels=dict(file.channels),
        key_file=here / file.key_file,
        service=file.service,
        inbox_url=file.inbox_url.rstrip("/") if file.inbox_url else None,
        state_file=here / file.state_file if file.state_file else settings.data_dir / "slack-messages.json",
        interval_seconds=file.interval_seconds,
        api_url=file.api_url if file.api_url.endswith("/") else file.api_url + "/",
        approvers_file=settings.approvers_file,
        bot_token=_secret(settings.slack_bot_token, file.bot_token_file, here, "AIRLOCK_SLACK_BOT_TOKEN", path),
        signing_secret=_secret(
            settings.slack_signing_secret, file.signing_secret_file, here, "AIRLOCK_SLACK_SIGNING_SECRET", path
        ),
    )


def _secret(value: SecretStr | None, file: Path | None, here: Path, variable: str, path: Path) -> SecretStr:
    if value is not None and value.get_secret_value().strip():
        return SecretStr(value.get_secret_value().strip())
    if file is None:
        raise ConfigError(f"approving from Slack needs {variable} (or its file named in {path})")
    try:
        text = (here / file).read_text().strip()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the secret file {here / file}: {err.strerror}") from None
    if not text:
        raise ConfigError(f"{path}: the secret file {here / file} is empty")
    return SecretStr(text)
