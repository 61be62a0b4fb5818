"""The MCP client: server registry and pooled sessions, auth, bounded reading, results, elicitation.

Knows nothing of Temporal: the worker side turns its errors into failures.
"""
