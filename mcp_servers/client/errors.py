"""Every exception the MCP client raises, in one place, under one base: `McpClientError`.

The client knows nothing of Temporal: the worker's activities translate these into the failure
types that cross the wire (`workflows/errors.py`) at the activity boundary. The whole vocabulary,
both sides, is in docs/errors.md.
"""

from __future__ import annotations

import httpx2
from mcp.client.auth import OAuthFlowError


class McpClientError(Exception):
    """Base of every exception of Airlock's MCP client; the message says what happened."""


class ServerFailedError(McpClientError):
    """The server could not be reached, or a request failed on the way (timed out, connection broke).

    A request that was sent may have arrived: its outcome is unknown.
    """


class RequestNotSentError(ServerFailedError):
    """The server could not be reached, so the request was never sent: safe to send again."""


class BreakerRefusedError(McpClientError):
    """The server's circuit breaker holds calls back for now because it kept failing: nothing was sent."""


class QuestionRefusedError(McpClientError):
    """A server's input request outside what the spec allows (or Airlock's bounds); the message says why."""


class LoginRequiredError(McpClientError, OAuthFlowError):
    """The server needs a person to log in once (`airlock mcp login SERVER`); the worker cannot.

    Also an `OAuthFlowError`, so the SDK's OAuth flow stops on it as on its own failures.
    """


class MessageTooLargeError(McpClientError, httpx2.StreamError):
    """An HTTP body past the reading limits; the SDK reports it as its request's error.

    Also an `httpx2.StreamError`, so the SDK's HTTP transport treats it as a failed read.
    """
