"""Secrets stay on the worker, and hostile model replies end the run cleanly.

Against a real Temporal dev server, the real `openai` client talking to a loopback stub that
echoes the API key, and a real HTTP MCP server that echoes its bearer token back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import structlog
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, CancelledError

from runtime.interceptors import ScrubFailures, scrubbed
from runtime.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor
from tests.support.echo_http import echo_http_server
from tests.support.histories import assert_no_task_failures, assert_replays, history_text
from tests.support.logs import worker_logs
from tests.support.openai_stub import Fault, OpenAIStub, RawOutput, Reply
from tests.support.project import SUPPORT_AGENT, airlock_worker, make_project
from tests.support.recording_model import record_model
from tests.support.runs import failure_of, workflow_id
from worker import build_activities
from workflows.payloads import AgentRequest, AgentResult

# Distinctive, so finding one anywhere cannot be a coincidence.
API_KEY = "sk-test-redact-9d4c1a7e5b"
TEMPORAL_KEY = "temporal-cloud-key-51f0c2"
ECHO_TOKEN = "echo-token-3f9a2c71d0"
RUN_DEADLINE_S = 60.0

Api = Literal["chat_completions", "responses"]


# --- the redactor -----------------------------------------------------------------------------


def test_the_longest_secret_is_replaced_first() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-ijkl"])
    # Shortest first would leave "-ijkl", a readable piece of the longer secret.
    assert redactor.scrub("x abcdefgh-ijkl y abcdefgh") == f"x {REDACTED} y {REDACTED}"


def test_every_occurrence_is_replaced() -> None:
    redactor = Redactor(["s3cr3t-value"])
    assert redactor.scrub("s3cr3t-value,s3cr3t-value s3cr3t-values") == f"{REDACTED},{REDACTED} {REDACTED}s"


def test_values_shorter_than_the_floor_are_not_scrubbed() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    floor = "y" * MIN_SECRET_LENGTH
    redactor = Redactor([short, "", None, "admin", floor])
    assert redactor.scrub(f"{short} admin {floor}") == f"{short} admin {REDACTED}"


def test_secrets_are_matched_literally() -> None:
    redactor = Redactor(["a+b*c.d(e)|f"])
    assert redactor.scrub("key=a+b*c.d(e)|f;") == f"key={REDACTED};"
    assert redactor.scrub("aab*c.d(e)|f aaaa") == "aab*c.d(e)|f aaaa"


def test_a_redactor_without_secrets_changes_nothing() -> None:
    assert Redactor().scrub("Bearer anything-at-all") == "Bearer anything-at-all"


def test_the_worker_redacts_its_api_keys_and_header_variables(tmp_path: Path) -> None:
    servers = """
    [servers.echo]
    transport = "http"
    url = "http://127.0.0.1:9/mcp"
    headers = { Authorization = "Bearer ${ECHO_TOKEN}", "X-Team" = "${TEAM_ID}" }
    """
    project = make_project(
        tmp_path,
        agents={"support": SUPPORT_AGENT.replace('["tickets"]', '["echo"]')},
        servers=servers,
        model_provider="openai",
        openai_api_key=API_KEY,
        temporal_api_key=TEMPORAL_KEY,
    )
    project.environ.update({"ECHO_TOKEN": ECHO_TOKEN, "TEAM_ID": "team-4242-platform", "UNRELATED": "not-a-secret-1"})
    redactor = build_activities(project.settings, environ=project.environ).redactor

    kept = f"not-a-secret-1 {project.tickets_db}"
    text = f"{API_KEY} {TEMPORAL_KEY} Bearer {ECHO_TOKEN} team-4242-platform {kept}"
    assert redactor.scrub(text) == f"{REDACTED} {REDACTED} Bearer {REDACTED} {REDACTED} {kept}"


# --- the activity interceptor -----------------------------------------------------------------


def test_an_application_error_keeps_its_type_and_retry_behaviour() -> None:
    redactor = Redactor([API_KEY])
    delay = timedelta(seconds=3)
    try:
        try:
            raise RuntimeError(f"inner {API_KEY}")
        except RuntimeError as inner:
            raise ApplicationError(
                f"refused {API_KEY}",
                f"detail {API_KEY}",
                {"key": API_KEY},
                type="ModelUnavailable",
                non_retryable=True,
                next_retry_delay=delay,
                category=ApplicationErrorCategory.BENIGN,
            ) from inner
    except ApplicationError as err:
        clean = scrubbed(err, redactor)

    assert clean.message == f"refused {REDACTED}"
    assert (clean.type, clean.non_retryable, clean.next_retry_delay) == ("ModelUnavailable", True, delay)
    assert clean.category == ApplicationErrorCategory.BENIGN
    assert list(clean.details) == [f"detail {REDACTED}"], "string details scrubbed, others dropped"
    assert clean.__cause__ is None


def test_any_other_error_keeps_its_class_name_as_type() -> None:
    clean = scrubbed(KeyError(f"no such {API_KEY}"), Redactor([API_KEY]))
    assert (clean.type, clean.non_retryable, clean.next_retry_delay) == ("KeyError", False, None)
    assert API_KEY not in clean.message and REDACTED in clean.message


@pytest.mark.parametrize("cancel", [asyncio.CancelledError(), CancelledError("Cancelled")])
async def test_cancellation_passes_the_interceptor_untouched(cancel: BaseException) -> None:
    class Raises:
        async def execute_activity(self, _input: object) -> object:
            raise cancel

    inbound = ScrubFailures(Redactor([API_KEY])).intercept_activity(Raises())  # type: ignore[arg-type]
    with pytest.raises(type(cancel)) as raised:
        await inbound.execute_activity(None)  # type: ignore[arg-type]
    assert raised.value is cancel


# --- logs -------------------------------------------------------------------------------------


def test_log_lines_are_scrubbed_from_structlog_and_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "log-secret-77a1c0de"
    with worker_logs(Redactor([secret]), capsys) as captured:
        structlog.get_logger("airlock.test").warning(
            "structlog_event",
            value=secret,
            nested={"items": [f"x{secret}"]},
            error=ValueError(secret),
        )
        logging.getLogger("httpx").warning("stdlib record %s", secret)
        try:
            raise RuntimeError(f"failing with {secret}")
        except RuntimeError:
            logging.getLogger("temporalio.activity").warning("Completing activity as failed", exc_info=True)
        text = captured()

    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == [
        "structlog_event",
        f"stdlib record {REDACTED}",
        "Completing activity as failed",
    ]
    assert lines[0]["value"] == REDACTED and lines[0]["nested"] == {"items": [f"x{REDACTED}"]}
    assert REDACTED in lines[0]["error"]
    assert f"RuntimeError: failing with {REDACTED}" in lines[2]["exception"]
    assert secret not in text


def test_a_forwarded_core_record_renders_without_its_raw_entry(capsys: pytest.CaptureFixture[str]) -> None:
    class CoreEntry:  # stands in for the object Temporal's log forwarding attaches to each record
        pass

    with worker_logs(Redactor(), capsys) as captured:
        logging.getLogger("temporalio.core").warning(
            "[TMPRL1104] Workflow task duration exceeded 5 seconds.", extra={"temporal_log": CoreEntry()}
        )
        text = captured()
    [line] = [json.loads(line) for line in text.splitlines()]
    assert line["event"].startswith("[TMPRL1104]") and line["logger"] == "temporalio.core"
    assert "temporal_log" not in line and "CoreEntry" not in text


# --- runs -------------------------------------------------------------------------------------


def serve(stubs: list[OpenAIStub], replies: list[Reply]) -> OpenAIStub:
    """Start an OpenAI-compatible stub answering `replies` in order."""
    stub = OpenAIStub(replies)
    stubs.append(stub)
    stub.start()
    return stub


async def run_to_failure(client: Client, task_queue: str, agent: str, prefix: str) -> tuple[Any, ApplicationError]:
    """Start `agent` and wait for the typed failure it ends with."""
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent=agent, input="Look at T-1.", requester="carol"),
        id=workflow_id(prefix),
        task_queue=task_queue,
        result_type=AgentResult,
    )
    return handle, await asyncio.wait_for(failure_of(handle), RUN_DEADLINE_S)


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_an_api_key_echoed_in_a_401_reaches_neither_history_nor_logs(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
    capsys: pytest.CaptureFixture[str],
    api: Api,
) -> None:
    stub = serve(stubs, [Fault(401, echo_authorization=True)])
    project = make_project(
        tmp_path,
        model_provider="openai",
        openai_api_key=API_KEY,
        openai_base_url=stub.base_url,
        openai_api=api,
    )
    async with airlock_worker(client, project) as activities:
        with worker_logs(activities.redactor, capsys) as captured:
            handle, cause = await run_to_failure(client, project.settings.task_queue, "support", f"redact-401-{api}")
            logged = captured()

    assert cause.type == "ModelError"
    assert "401" in cause.message
    assert f"Bearer {REDACTED}" in cause.message, "the stub echoed the key, and it was scrubbed"
    assert len(stub.requests) == 1, "a refused key is not retried"
    history = await history_text(handle)
    assert f"Bearer {REDACTED}" in history
    assert API_KEY not in history
    assert "activity_failed" in logged and f"Bearer {REDACTED}" in logged, "the capture saw the failure"
    assert API_KEY not in logged
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


ECHO_AGENT = """
name = "echo"
instructions = "You find out who you are."
mcp_servers = ["echo"]

[tools]
"*" = "auto"
"""
ECHO_SCRIPT: dict[str, list[dict[str, Any]]] = {
    "echo": [
        {"tool_calls": [{"name": "whoami"}, {"name": "check_access"}, {"name": "rotate_token"}]},
        {"message": "Done."},
    ]
}


async def test_a_bearer_token_echoed_by_an_mcp_server_reaches_neither_history_model_nor_logs(
    client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with echo_http_server() as url:
        servers = f"""
        [servers.echo]
        transport = "http"
        url = "{url}"
        headers = {{ Authorization = "Bearer ${{ECHO_TOKEN}}" }}
        trust = "trusted"
        timeout = "10s"
        """
        project = make_project(tmp_path, agents={"echo": ECHO_AGENT}, servers=servers, script=ECHO_SCRIPT)
        project.environ["ECHO_TOKEN"] = ECHO_TOKEN
        async with airlock_worker(client, project) as activities:
            spy = record_model(activities)
            with worker_logs(activities.redactor, capsys) as captured:
                handle = await client.start_workflow(
                    "AgentWorkflow",
                    AgentRequest(agent="echo", input="Who am I?", requester="carol"),
                    id=workflow_id("redact-mcp"),
                    task_queue=project.settings.task_queue,
                    result_type=AgentResult,
                )
                result = await asyncio.wait_for(handle.result(), RUN_DEADLINE_S)
                logged = captured()

    assert (result.output, result.tool_calls) == ("Done.", 3)
    whoami, check_access, rotate_token = spy.tool_outputs()
    # Each result quotes the header the server received: the token reached the server, not the model.
    assert whoami == f"You are calling with Authorization: Bearer {REDACTED}"
    assert check_access.startswith("Error:") and f"access denied for Authorization: Bearer {REDACTED}" in check_access
    assert "outcome of echo.rotate_token is unknown" in rotate_token
    assert f"cannot rotate token of Bearer {REDACTED}" in rotate_token
    seen = json.dumps([call.model_dump(mode="json") for call in spy.calls])
    assert ECHO_TOKEN not in seen
    history = await history_text(handle)
    assert f"Bearer {REDACTED}" in history
    assert ECHO_TOKEN not in history
    assert "activity_failed" in logged and f"Bearer {REDACTED}" in logged, "the capture saw the failed write"
    assert ECHO_TOKEN not in logged
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)


MALFORMED_OUTPUTS: dict[str, Any] = {
    "function_call_without_call_id": [
        {"type": "function_call", "id": "fc_1", "name": "get_ticket", "arguments": "{}", "status": "completed"},
    ],
    "function_call_without_name": [
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "arguments": "{}", "status": "completed"},
    ],
    "unknown_item_type": [{"type": "telepathy", "id": "tp_1", "thought": "close every ticket"}],
    "output_not_a_list": {"type": "message", "role": "assistant", "content": "hi"},
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_OUTPUTS))
async def test_a_malformed_model_reply_fails_the_run_with_model_error(
    client: Client,
    tmp_path: Path,
    stubs: list[OpenAIStub],
    shape: str,
) -> None:
    stub = serve(stubs, [RawOutput(MALFORMED_OUTPUTS[shape])])
    project = make_project(
        tmp_path,
        model_provider="openai",
        openai_api_key=API_KEY,
        openai_base_url=stub.base_url,
        openai_api="responses",
    )
    async with airlock_worker(client, project):
        handle, cause = await run_to_failure(client, project.settings.task_queue, "support", f"redact-{shape}")

    assert cause.type == "ModelError"
    assert cause.message.startswith("the model's reply is malformed: "), cause.message
    assert len(cause.message) < 300, "the reason is short"
    assert len(stub.requests) == 1, "a malformed reply is permanent: not retried"
    assert_no_task_failures(await handle.fetch_history())
    await assert_replays(handle)
