"""Tickets: a small SQLite ticket tracker served over MCP (stdio or streamable HTTP)."""
