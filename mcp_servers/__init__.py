"""MCP side of Airlock: the server registry and the servers that ship with it."""
