"""The agent catalog: `agents/*.toml` loaded and validated once, at worker start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from mcp.shared.tool_name_validation import TOOL_NAME_REGEX
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities import policy
from activities.rules import PolicyRules
from mcp_servers.tomlfiles import ConfigError, parse_duration, read_toml, validate
from workflows.payloads import ApprovalConfig, Policy

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalSection(_Strict):
    """The `[approval]` table."""

    approvers: list[str] = Field(default_factory=list, max_length=1_000)
    required: int = Field(default=1, ge=1, le=100)
    timeout: str | float = "24h"
    on_timeout: Literal["reject", "fail"] = "reject"
    allow_self_approval: bool = False
    escalate_after: str | float | None = None
    escalate_to: list[str] = Field(default_factory=list, max_length=1_000)

    @field_validator("timeout", "escalate_after")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("must be a positive duration")
        return value

    @model_validator(mode="after")
    def _escalation(self) -> ApprovalSection:
        if (self.escalate_after is None) != (not self.escalate_to):
            raise ValueError("'escalate_after' and 'escalate_to' go together")
        return self


class AgentSpec(_Strict):
    """One agent file, as declared."""

    name: str
    model: str = "gpt-4.1-mini"
    instructions: str
    handoff_description: str = ""
    mcp_servers: list[str] = Field(default_factory=list)
    handoffs: list[str] = Field(default_factory=list)
    max_turns: int = Field(default=20, ge=1, le=10_000)
    max_tool_calls: int = Field(default=50, ge=0, le=100_000)
    max_total_tokens: int = Field(default=1_000_000, ge=1)
    # The agent's model accepts images (a vision model on the Responses API): tool images reach it.
    model_takes_images: bool = False
    tools: dict[str, Policy] = Field(default_factory=dict)
    approval: ApprovalSection = Field(default_factory=ApprovalSection)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must match [a-z][a-z0-9_]* (at most 64 characters)")
        return value

    def approval_config(self) -> ApprovalConfig:
        """The approval settings in wire form."""
        return ApprovalConfig(
            approvers=self.approval.approvers,
            required=self.approval.required,
            timeout_seconds=parse_duration(self.approval.timeout),
            on_timeout=self.approval.on_timeout,
            allow_self_approval=self.approval.allow_self_approval,
            escalate_after_seconds=(
                parse_duration(self.approval.escalate_after) if self.approval.escalate_after is not None else None
            ),
            escalate_to=self.approval.escalate_to,
        )


class Catalog:
    """Every declared agent by name, cross-checked against the server registry."""

    def __init__(self, agents: dict[str, AgentSpec], files: dict[str, Path], rules: PolicyRules | None = None) -> None:
        self.agents = agents
        self.files = files
        # The worker's Cedar policies (activities/rules.py), beside each agent's `[tools]` rules.
        self.rules = rules or PolicyRules()

    def get(self, name: str) -> AgentSpec | None:
        """The agent called `name`, if declared."""
        return self.agents.get(name)

    @classmethod
    def load(cls, directory: Path, server_names: set[str], policy_dir: Path | None = None) -> Catalog:
        """Load `directory/*.toml` (and `policy_dir/*.cedar`); any error names the file and the key or line."""
        if not directory.is_dir():
            raise ConfigError(f"{directory}: agents directory not found (AIRLOCK_AGENTS_DIR)")
        agents: dict[str, AgentSpec] = {}
        files: dict[str, Path] = {}
        for path in sorted(directory.glob("*.toml")):
            data: dict[str, Any] = read_toml(path)
            data.setdefault("name", path.stem)
            spec = validate(AgentSpec, data, path=path)
            if spec.name in agents:
                raise ConfigError(f"{path}: key 'name': {spec.name!r} is also declared in {files[spec.name]}")
            for index, server in enumerate(spec.mcp_servers):
                if server not in server_names:
                    known = ", ".join(sorted(server_names)) or "none"
                    raise ConfigError(
                        f"{path}: key 'mcp_servers[{index}]': unknown MCP server {server!r} (known: {known})"
                    )
            for key in spec.tools:
                problem = policy.rule_problem(key, servers=spec.mcp_servers, tool_name=TOOL_NAME_REGEX)
                if problem is not None:
                    raise ConfigError(f"{path}: key {'tools.' + key!r}: {problem}")
            agents[spec.name] = spec
            files[spec.name] = path
        for name, spec in agents.items():
            for index, target in enumerate(spec.handoffs):
                if target not in agents:
                    raise ConfigError(f"{files[name]}: key 'handoffs[{index}]': unknown agent {target!r}")
        if not agents:
            raise ConfigError(f"{directory}: no agent files (*.toml) found")
        return cls(agents, files, PolicyRules.load(policy_dir, agents=agents))
