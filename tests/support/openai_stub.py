"""A scripted OpenAI-compatible HTTP endpoint on loopback for tests.

Tests point the real ``openai`` client (and the Agents SDK models built on it) at
``OpenAIStub.base_url`` so every layer above the LLM, including HTTP, auth headers,
retries and response parsing, runs for real; only the model's answers are scripted.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["Fault", "OpenAIStub", "RawOutput", "Reply", "Text", "ToolCalls"]

# Fixed rather than wall-clock so identical scripts produce identical bodies.
_CREATED = 1_700_000_000
# Small, fixed and non-zero so usage aggregation in callers is observable and predictable.
_INPUT_TOKENS = 11
_OUTPUT_TOKENS = 7

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.01

# OpenAI's error `type` and `code` for the statuses tests are likely to script.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class ToolCalls:
    """The assistant asks to call these tools, given as ``(name, arguments)`` pairs."""

    calls: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Text:
    """A final assistant message with this text."""

    text: str


@dataclass(frozen=True)
class Fault:
    """An HTTP error reply; ``body`` replaces the default OpenAI-style error JSON.

    With ``echo_authorization`` the error message quotes the request's ``Authorization``
    header (and so the API key), as a careless provider or proxy does.
    """

    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None
    echo_authorization: bool = False


@dataclass(frozen=True)
class RawOutput:
    """A 200 Responses-API reply whose ``output`` is exactly this JSON, well-formed or not.

    A hostile endpoint can send items the Agents SDK cannot rebuild (a ``function_call``
    without ``call_id``, an unknown item type, an ``output`` that is not a list).
    """

    output: Any


Reply = ToolCalls | Text | Fault | RawOutput


def _error_body(status: int, message: str) -> dict[str, Any]:
    """Build an OpenAI-style error body for ``status``.

    Args:
        status: The HTTP status the error is sent with.
        message: The human-readable error message.

    Returns:
        ``{"error": {"message", "type", "code", "param"}}`` as the API sends it.
    """
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def _error(status: int, message: str) -> JSONResponse:
    """Answer with an OpenAI-style error.

    Args:
        status: The HTTP status to send.
        message: The human-readable error message.

    Returns:
        The JSON error response.
    """
    return JSONResponse(_error_body(status, message), status_code=status)


@dataclass
class _Script:
    """The replies still to give and the counters that make ids deterministic."""

    replies: list[Reply]
    served: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class OpenAIStub:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers from a script.

    Each authorised, well-formed request to ``/v1/chat/completions`` or ``/v1/responses``
    consumes the next reply in order; when the script runs out the stub answers 500 so
    an unexpected extra model call fails loudly. Requests rejected before a reply is
    chosen (missing bearer token, malformed JSON, ``stream: true``) consume nothing.

    Attributes:
        base_url: ``http://127.0.0.1:PORT/v1``; valid after :meth:`start`.
        requests: JSON bodies of authorised requests, in arrival order, each with the
            request path under ``"_path"``. Headers (and so the API key) are never stored.
    """

    def __init__(self, replies: list[Reply]) -> None:
        """Create a stub that will answer with ``replies`` in order.

        Args:
            replies: The scripted answers, one per model request.
        """
        self.base_url: str = ""
        self.requests: list[dict[str, Any]] = []
        self._script = _Script(replies=list(replies))
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
            ]
        )

    @property
    def remaining(self) -> int:
        """Return how many scripted replies have not been consumed yet."""
        with self._script.lock:
            return len(self._script.replies)

    def start(self) -> None:
        """Serve on a free loopback port and return once connections are accepted.

        Raises:
            RuntimeError: If the stub is already running or the server does not come up
                before the deadline.
        """
        if self._thread is not None:
            raise RuntimeError("OpenAIStub is already running")
        # Binding here instead of passing port=0 to uvicorn gives the port before the
        # thread starts and leaves no window for another process to take it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Idle keep-alive connections from the client must not hold up stop().
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"openai-stub-{port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not (server.started and _accepts(port)):
            if not thread.is_alive():
                sock.close()
                self._server = self._thread = None
                raise RuntimeError("OpenAIStub server thread exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"OpenAIStub did not accept connections within {_START_TIMEOUT}s")
            time.sleep(_POLL_INTERVAL)
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        """Shut the server down and join its thread; a no-op when not running.

        Raises:
            RuntimeError: If the server thread is still alive after the deadline.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=_STOP_TIMEOUT)
        if thread.is_alive():
            # Graceful shutdown is stuck on an open connection; cut it off.
            server.force_exit = True
            thread.join(timeout=_STOP_TIMEOUT)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"OpenAIStub server thread did not stop within {2 * _STOP_TIMEOUT}s")

    def __enter__(self) -> OpenAIStub:
        """Start the stub for a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the stub at the end of a ``with`` block."""
        self.stop()

    async def _chat_completions(self, request: Request) -> JSONResponse:
        """Answer ``POST /v1/chat/completions`` with the next scripted reply."""
        received = await self._receive(request)
        if isinstance(received, JSONResponse):
            return received
        body, reply, n = received
        if isinstance(reply, Fault):
            return _fault(reply)
        if isinstance(reply, RawOutput):
            # Fail loudly: a script meant for the Responses API reached the wrong endpoint.
            return _error(400, "RawOutput replies are for /v1/responses only.")
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if isinstance(reply, ToolCalls):
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                for call_id, name, arguments in self._number_calls(reply)
            ]
            finish_reason = "tool_calls"
        else:
            message["content"] = reply.text
            finish_reason = "stop"
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": _CREATED,
                "model": body.get("model", "stub-model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
                "usage": {
                    "prompt_tokens": _INPUT_TOKENS,
                    "completion_tokens": _OUTPUT_TOKENS,
                    "total_tokens": _INPUT_TOKENS + _OUTPUT_TOKENS,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
                "system_fingerprint": None,
                "service_tier": "default",
            }
        )

    async def _responses(self, request: Request) -> JSONResponse:
        """Answer ``POST /v1/responses`` with the next scripted reply."""
        received = await self._receive(request)
        if isinstance(received, JSONResponse):
            return received
        body, reply, n = received
        if isinstance(reply, Fault):
            return _fault(reply)
        output: Any
        if isinstance(reply, RawOutput):
            output = reply.output
        elif isinstance(reply, ToolCalls):
            output = [
                {
                    "type": "function_call",
                    "id": f"fc_{call_id.removeprefix('call_')}",
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments,
                    "status": "completed",
                }
                for call_id, name, arguments in self._number_calls(reply)
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": f"msg_{n}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
                }
            ]
        # The Response model requires parallel_tool_calls, tool_choice and tools; the
        # real API echoes request settings back, so the stub does the same.
        return JSONResponse(
            {
                "id": f"resp_{n}",
                "object": "response",
                "created_at": _CREATED,
                "completed_at": _CREATED,
                "status": "completed",
                "model": body.get("model", "stub-model"),
                "output": output,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "metadata": body.get("metadata") or {},
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "temperature": body.get("temperature", 1.0),
                "top_p": body.get("top_p", 1.0),
                "max_output_tokens": body.get("max_output_tokens"),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None},
                "text": {"format": {"type": "text"}},
                "truncation": "disabled",
                "usage": {
                    "input_tokens": _INPUT_TOKENS,
                    "output_tokens": _OUTPUT_TOKENS,
                    "total_tokens": _INPUT_TOKENS + _OUTPUT_TOKENS,
                    # openai>=3.x declares cache_write_tokens as required here.
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )

    async def _receive(self, request: Request) -> tuple[dict[str, Any], Reply, int] | JSONResponse:
        """Check and record a request, then take the next reply for it.

        Args:
            request: The incoming model request.

        Returns:
            ``(body, reply, n)`` with ``n`` the 1-based number of the reply, or the error
            response to send instead.
        """
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "Missing bearer token in the Authorization header.")
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return _error(400, f"Request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object.")
        with self._script.lock:
            self.requests.append({**body, "_path": request.url.path})
            if body.get("stream"):
                return _error(400, "streaming not supported by stub")
            if not self._script.replies:
                return _error(
                    500,
                    f"OpenAIStub script exhausted: request {len(self.requests)} to {request.url.path} "
                    f"arrived after all {self._script.served} scripted replies were used.",
                )
            self._script.served += 1
            reply, n = self._script.replies.pop(0), self._script.served
        if isinstance(reply, Fault) and reply.echo_authorization:
            header = request.headers["authorization"]
            message = f"Invalid Authorization header {header!r}: no such API key."
            reply = Fault(reply.status, reply.retry_after, _error_body(reply.status, message))
        return body, reply, n

    def _number_calls(self, reply: ToolCalls) -> list[tuple[str, str, str]]:
        """Give each requested call a stub-wide ``call_<n>`` id.

        Args:
            reply: The scripted tool calls.

        Returns:
            ``(call_id, name, arguments_json)`` for each call, in order.
        """
        numbered: list[tuple[str, str, str]] = []
        with self._script.lock:
            for name, arguments in reply.calls:
                self._script.calls += 1
                numbered.append((f"call_{self._script.calls}", name, json.dumps(arguments)))
        return numbered


def _fault(fault: Fault) -> JSONResponse:
    """Answer with a scripted HTTP error.

    Args:
        fault: The scripted fault.

    Returns:
        The error response, with ``Retry-After`` when the fault sets one.
    """
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = _format_seconds(fault.retry_after)
    body = fault.body if fault.body is not None else _error_body(fault.status, f"Scripted fault {fault.status}.")
    return JSONResponse(body, status_code=fault.status, headers=headers)


def _format_seconds(seconds: float) -> str:
    """Render seconds without a trailing ``.0`` so ``2.0`` is sent as ``2``.

    Args:
        seconds: The delay to render.

    Returns:
        The header value.
    """
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _accepts(port: int) -> bool:
    """Report whether something accepts TCP connections on ``127.0.0.1:port``.

    Args:
        port: The port to probe.

    Returns:
        True when a connection succeeds.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
