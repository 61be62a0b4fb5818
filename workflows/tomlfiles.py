"""TOML configuration helpers, re-exported from the MCP side where `servers.toml` needs them too."""

from __future__ import annotations

from mcp_servers.tomlfiles import ConfigError, parse_duration, read_toml, validate

__all__ = ["ConfigError", "parse_duration", "read_toml", "validate"]
