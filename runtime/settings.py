"""Worker settings: the one door for configuration (`AIRLOCK_*` environment variables)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_servers.tomlfiles import parse_duration
from workflows.limits import MAX_RESULT_BYTES_CEILING

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the worker reads from its environment, validated once at start."""

    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    # None: TLS when an API key, a CA, a client certificate or a server name is set (runtime/tls.py).
    temporal_tls: bool | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    # The CA that signed the server's certificate (PEM); without it, the system's roots.
    temporal_tls_ca: Path | None = None
    # The name the server's certificate carries, when it is not the host in the address.
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    task_queue: str = "airlock"

    agents_dir: Path = PROJECT_ROOT / "agents"
    # Pipelines live next to the agents they run unless told otherwise.
    pipelines_dir: Path | None = None
    # Cedar policy files (docs/policy.md); None: `<agents dir>/policies` when that directory exists.
    policy_dir: Path | None = None
    mcp_servers_file: Path = PROJECT_ROOT / "mcp_servers" / "servers.toml"
    # Pinned tool definitions (`airlock mcp pin`); None: `tools.lock.toml` beside the servers file.
    tools_lock_file: Path | None = None
    # Who may sign decisions; without it decisions are only asserted (the worker warns).
    approvers_file: Path | None = None
    data_dir: Path = Path(".airlock")

    model_provider: Literal["openai", "scripted"] | None = None
    scripted_model_file: Path | None = None
    openai_api: Literal["responses", "chat_completions"] = "responses"
    # Not AIRLOCK_-prefixed: the names every OpenAI client already honours.
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    model_timeout: timedelta = timedelta(seconds=120)
    # At most MAX_RESULT_BYTES_CEILING: a read's reply must fit a workflow task's local results.
    max_result_bytes: int = Field(default=64_000, gt=0, le=MAX_RESULT_BYTES_CEILING)
    approval_webhook_url: str | None = None
    # Continue-as-new once a run's history reaches this many events (or Temporal suggests it).
    max_history_events: int = 10_000
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # Temporal core's own lines (forwarded into the log stream): TRACE, DEBUG, INFO, WARN or ERROR.
    temporal_core_log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "WARN"

    # Run workflow code in Temporal's checking sandbox on this worker too (tests always replay in it).
    workflow_sandbox: bool = False
    # Workflows each worker process keeps cached (runs waiting at the gate among them); unset: sized
    # from the memory the process may use (runtime/capacity.py, docs/scale.md).
    max_cached_workflows: int | None = Field(default=None, gt=0)
    # Workflow-worker processes `python worker.py` runs, each with its own Temporal runtime and MCP
    # sessions (runtime/processes.py); one per core on a bigger host (docs/scale.md).
    worker_processes: int = Field(default=1, ge=1, le=256)
    dev_ui_port: int = 8233
    # OpenTelemetry traces of every run, sent over OTLP/HTTP (docs/deploy.md, "Traces and metrics").
    tracing: bool = False
    # The collector's base URL (the SDK adds /v1/traces); unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    # OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318.
    otlp_endpoint: str | None = None
    # host:port of the Prometheus scrape endpoint (Temporal's metrics and Airlock's); empty: off.
    metrics_bind: str = ""
    # host:port of the worker's `/healthz` (its dependencies, as JSON); empty: off.
    health_bind: str = ""
    # How often the worker probes its model endpoint and MCP servers again (runtime/health.py).
    dependency_check_interval: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))

    # The approval inbox (`airlock inbox`, and `python worker.py --dev`).
    inbox_host: str = "127.0.0.1"
    inbox_port: int = 8234
    # The header the authenticating reverse proxy sets (oauth2-proxy: X-Forwarded-User or
    # X-Forwarded-Email; Pomerium: X-Pomerium-Claim-Email), believed only from these peers.
    inbox_identity_header: str = "X-Forwarded-User"
    inbox_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Host names (host or host:port) the inbox answers to; empty: the bind address and localhost.
    inbox_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The Ed25519 key of `[services.inbox]` in approvers.toml; without it decisions go unsigned.
    inbox_key_file: Path | None = None
    inbox_service_name: str = "inbox"
    # Approving from Slack (console/slack, docs/slack.md): with `slack_file` (slack.toml: channels,
    # the `[services.slack]` key, the inbox URL), `airlock inbox` also runs the Slack bridge and
    # serves `/slack/interactions`. The two secrets live only on the inbox host.
    slack_file: Path | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None

    # Payload encryption (runtime/codec.py): off unless set; the worker, CLI and inbox all use it.
    codec_keys_file: Path | None = None
    # `airlock codec-server`: loopback by default; a bearer token is required.
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = 8235
    codec_server_token: SecretStr | None = None
    codec_server_token_file: Path | None = None
    # Web UI origins allowed to call it from a browser (never `*`); the dev UI's by default.
    codec_server_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    # 2 MiB: bounds the CPU one request can cost (with the payload count in console/codec_server.py).
    codec_server_max_body_bytes: int = 2_097_152

    @field_validator("metrics_bind", "health_bind")
    @classmethod
    def _host_port(cls, value: str, info: ValidationInfo) -> str:
        """`host:port` or empty; anything else is named before Temporal's runtime refuses it obscurely."""
        host, _, port = value.rpartition(":")
        if value and not (host and port.isdigit() and 0 < int(port) < 65536):
            name = f"AIRLOCK_{str(info.field_name).upper()}"
            raise ValueError(f"{name}={value!r} is not host:port (e.g. 127.0.0.1:9464)")
        return value

    @field_validator("dependency_check_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        """`30s`, `5m` or a number of seconds, as in the TOML files; ISO 8601 (`PT30S`) still works."""
        if isinstance(value, str) and not value.upper().startswith("P") and ":" not in value:
            text = value.strip()
            return timedelta(seconds=float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text))
        return value

    @field_validator("inbox_trusted_proxies", "inbox_allowed_hosts", "codec_server_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """`a,b` in the environment is the list [a, b]."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def resolved_pipelines_dir(self) -> Path:
        """Where pipeline files are read: `AIRLOCK_PIPELINES_DIR`, else `<agents dir>/pipelines`."""
        return self.pipelines_dir if self.pipelines_dir is not None else self.agents_dir / "pipelines"

    def resolved_tools_lock_file(self) -> Path:
        """Where pinned tool definitions are kept: `AIRLOCK_TOOLS_LOCK_FILE`, else beside the servers file."""
        if self.tools_lock_file is not None:
            return self.tools_lock_file
        return self.mcp_servers_file.parent / "tools.lock.toml"

    def resolved_policy_dir(self) -> Path | None:
        """Where Cedar policies are read: `AIRLOCK_POLICY_DIR` (must exist), else `<agents dir>/policies` if present."""
        if self.policy_dir is not None:
            return self.policy_dir
        default = self.agents_dir / "policies"
        return default if default.is_dir() else None

    def resolved_provider(self) -> Literal["openai", "scripted"] | None:
        """The model provider to use: explicit setting, else `openai` when a key is set."""
        if self.model_provider is not None:
            return self.model_provider
        if self.openai_api_key is not None:
            return "openai"
        if self.scripted_model_file is not None:
            return "scripted"
        return None
