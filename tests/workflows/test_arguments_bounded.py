"""workflows/arguments.py in-process: only real JSON, and schemas checked as data, within bounds.

The end-to-end attacks are in tests/hostile/test_not_json.py and test_hostile_schemas.py; these
pin each rule down on its own, with deadlines where the danger is time.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from workflows.arguments import (
    MAX_ARGUMENTS_BYTES,
    MAX_SCHEMA_STEPS,
    NOT_JSON_NOTE,
    UNUSABLE_SCHEMA,
    arguments_sha256,
    not_json,
    parse_arguments,
    schema_errors,
)
from workflows.decoding import NotJSON, parse, received
from workflows.errors import InvalidInputError
from workflows.model_output import only_json, problem
from workflows.payloads import Approve

# Far more than RE2 or the step budget needs, far less than Python's `re` takes on these inputs.
DEADLINE_S = 2.0
BACKTRACKING = r"^(\w+\s?)*$"
SENTENCE = " ".join(["word"] * 40) + "."


def within_deadline(check: Callable[[], Any]) -> Any:
    """Run `check`, failing if it takes longer than the deadline."""
    started = time.monotonic()
    result = check()
    assert time.monotonic() - started < DEADLINE_S
    return result


@pytest.mark.parametrize(
    ("raw", "told"),
    [
        ('{"amount": NaN}', "amount: NaN is not a JSON number"),
        ('{"amount": Infinity}', "amount: Infinity is not a JSON number"),
        ('{"amount": [-Infinity]}', "amount/0: -Infinity is not a JSON number"),
        ('{"amount": 1e309}', "amount: Infinity is not a JSON number (nor is a number as large as 1e309)"),
        ('{"memo": "a\\ud800b"}', "memo: a string with a lone surrogate (\\ud800) is not text"),
        ('{"memo": "\\udfff"}', "memo: a string with a lone surrogate (\\udfff) is not text"),
        ('{"x": {"\\udc00": 1}}', "x: a key with a lone surrogate (\\udc00) is not text"),
        ('{"n": ' + "9" * 5000 + "}", "Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_arguments_that_are_not_real_json_are_refused_with_the_reason(raw: str, told: str) -> None:
    arguments, problem_text = parse_arguments(raw, {"type": "object"})
    assert arguments is None
    assert problem_text is not None and problem_text.startswith("the arguments are not valid JSON: " + told)
    problem_text.encode()  # the reason itself is text a payload can carry


def test_a_surrogate_pair_is_text_and_the_hash_is_the_canonical_one() -> None:
    arguments, problem_text = parse_arguments('{"memo": "\\ud83d\\ude00", "amount": 1.5}', {"type": "object"})
    assert (arguments, problem_text) == ({"memo": "😀", "amount": 1.5}, None)
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert arguments_sha256(arguments) == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "\ud800", {"\udfff": 1}])
def test_the_hash_refuses_what_is_not_json_instead_of_hashing_something_else(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        arguments_sha256({"x": value})


def test_not_json_names_the_place_even_deep_and_wide() -> None:
    value: Any = {"a": [{"b": 1}, {"c": [1, 2, {"d": float("nan")}]}]}
    assert not_json(value) == "a/1/c/2/d: NaN is not a JSON number"
    assert not_json({"x": list(range(100_000))}) is None
    assert not_json({"x": ("tuple",)}) == "x: a tuple is not a JSON value"


def test_the_models_note_for_arguments_no_payload_can_carry_reaches_the_model() -> None:
    raw = '{"memo": "\\ud800"}'
    call = {"type": "function_call", "call_id": "c-1", "name": "pay", "arguments": raw, "status": "completed"}
    message = {"type": "message", "id": "m", "role": "assistant", "status": "completed", "content": []}
    [noted, untouched] = only_json([call, message])
    assert untouched is message
    assert noted["arguments"] == f"{NOT_JSON_NOTE}memo: a string with a lone surrogate (\\ud800) is not text)"
    assert problem([noted]) is None
    assert parse_arguments(noted["arguments"], {}) == (
        None,
        "the arguments are not valid JSON: memo: a string with a lone surrogate (\\ud800) is not text",
    )
    assert only_json([{**call, "arguments": '{"memo": "fine"}'}])[0]["arguments"] == '{"memo": "fine"}'
    assert only_json([{**call, "arguments": "{broken"}])[0]["arguments"] == "{broken", "parse_arguments says why"
    # A provider's JSON can carry the surrogate itself (decoded), not only its escape.
    [decoded] = only_json([{**call, "arguments": '{"memo": "\ud800"}'}])
    assert decoded["arguments"] == noted["arguments"] and problem([decoded]) is None
    text = {"type": "output_text", "text": "\ud800", "annotations": []}
    assert problem([{**message, "content": [text]}]) == (
        "output item 0: not valid JSON: content/0/text: a string with a lone surrogate (\\ud800) is not text"
    )


def test_a_caller_value_that_is_not_json_is_refused_keeping_only_clean_names() -> None:
    sent = {"call_id": "c-1", "approver": "alice\ud800", "arguments_sha256": "0" * 64, "arguments": {"a": 1}}
    raw = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(sent).encode()))
    value = received(raw)
    assert isinstance(value, NotJSON) and dict(value) == {"call_id": "c-1"}
    with pytest.raises(InvalidInputError, match="invalid approve signal: not valid JSON: approver: a string with"):
        parse(Approve, value, "approve signal")
    nan = received({**sent, "approver": "alice", "arguments": {"a": float("nan")}})
    assert isinstance(nan, NotJSON) and dict(nan) == {"call_id": "c-1", "approver": "alice"}
    clean = {**sent, "approver": "alice"}
    assert received(clean) is clean


def text_schema(**text: Any) -> dict[str, Any]:
    """An object schema with one string property `text` carrying `text`'s keywords."""
    return {"type": "object", "properties": {"text": {"type": "string", **text}}}


@pytest.mark.parametrize(
    "schema",
    [
        text_schema(pattern=BACKTRACKING),
        {"type": "object", "patternProperties": {BACKTRACKING: {"type": "integer"}}},
        {"type": "object", "patternProperties": {BACKTRACKING: True}, "additionalProperties": False},
        # A subschema naming draft 7 would switch jsonschema to that draft's `re`-based keywords.
        {
            "type": "object",
            "properties": {"text": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": BACKTRACKING}},
        },
    ],
)
def test_a_backtracking_pattern_is_matched_in_linear_time(schema: dict[str, Any]) -> None:
    problems = within_deadline(lambda: schema_errors(schema, {"text": SENTENCE, SENTENCE: "x"}))
    assert problems and not problems[0].startswith(UNUSABLE_SCHEMA), problems


def test_ordinary_patterns_still_match() -> None:
    schema = text_schema(pattern="^T-[0-9]+$")
    assert schema_errors(schema, {"text": "T-12"}) == []
    assert schema_errors(schema, {"text": "X-12"}) == ["text: 'X-12' does not match '^T-[0-9]+$'"]
    assert schema_errors({"type": "object", "patternProperties": {"^x_": {"type": "integer"}}}, {"x_a": 1}) == []


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        (text_schema(pattern="^(?=.*[0-9]).+$"), "not supported by Airlock's linear-time matcher (RE2)"),
        (text_schema(pattern="(a)\\1"), "not supported by Airlock's linear-time matcher (RE2)"),
        ({"type": "object", "patternProperties": {"(?!x)": True}}, "not supported by Airlock's linear-time matcher"),
        (
            {"type": "object", "patternProperties": {"^a": True}, "unevaluatedProperties": False},
            "combines unevaluatedProperties with patternProperties",
        ),
        ({"type": "object", "properties": {"x": {"items": [{"type": "string"}]}}}, "not a valid JSON Schema"),
        ({"$ref": "#"}, "not a valid JSON Schema (RecursionError)"),
        ({"type": "object", "properties": {"x": {"type": "nonsense"}}}, "not a valid JSON Schema (UnknownType)"),
        ({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}}, "which is not in the schema"),
        ({"type": "object", "properties": {"x": {"$ref": "file:///etc/passwd"}}}, "and Airlock fetches nothing"),
    ],
)
def test_a_schema_that_cannot_be_checked_safely_makes_the_call_an_error(schema: dict[str, Any], why: str) -> None:
    # Checked even where the arguments never reach the offending part: the tool is at fault.
    problems = within_deadline(lambda: schema_errors(schema, {"x": ["a"], "text": "a1"}))
    assert len(problems) == 1 and problems[0].startswith(UNUSABLE_SCHEMA) and why in problems[0], problems
    _, told = parse_arguments('{"x": ["a"], "text": "a1"}', schema)
    assert told == problems[0]


def test_a_schema_that_breaks_the_arithmetic_is_unusable_not_a_crash() -> None:
    schema = {"type": "object", "properties": {"x": {"multipleOf": 0}}}
    assert schema_errors(schema, {"x": 1.5}) == [
        f"{UNUSABLE_SCHEMA}: it is not a valid JSON Schema (ZeroDivisionError)"
    ]


def test_unevaluated_properties_without_patterns_still_work() -> None:
    schema = {"type": "object", "properties": {"a": True}, "unevaluatedProperties": False}
    assert schema_errors(schema, {"a": 1}) == []
    assert "Unevaluated properties are not allowed" in schema_errors(schema, {"a": 1, "b": 2})[0]


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP listener that would serve a schema, and the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.integration  # a listener records any fetch
def test_remote_refs_are_never_fetched_local_ones_resolve(listener: tuple[str, list[str]]) -> None:
    base, asked = listener
    remote = {"type": "object", "properties": {"x": {"$ref": f"{base}/x"}}}
    relative = {"$id": f"{base}/root", "type": "object", "properties": {"x": {"$ref": "other"}}}
    for schema in (remote, relative):
        [problem_text] = schema_errors(schema, {"x": 1})
        assert problem_text.startswith(UNUSABLE_SCHEMA) and "and Airlock fetches nothing" in problem_text
    assert asked == []
    local = {"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}}
    assert schema_errors(local, {"x": 1}) == []
    assert schema_errors(local, {"x": "1"}) == ["x: '1' is not of type 'integer'"]


def test_a_schema_built_to_explode_stops_at_the_step_budget() -> None:
    levels = 40  # each level doubles the work: 2**40 subschemas without a budget
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    schema = {"$defs": defs, "type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}}
    [problem_text] = within_deadline(lambda: schema_errors(schema, {"x": 1}))
    assert problem_text == f"{UNUSABLE_SCHEMA}: checking it takes more than {MAX_SCHEMA_STEPS} steps"


def test_big_arguments_over_budget_hear_about_their_size() -> None:
    schema = {"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}}}
    rows = [{"n": i} for i in range(MAX_SCHEMA_STEPS + 1)]
    [problem_text] = within_deadline(lambda: schema_errors(schema, {"rows": rows}))
    assert problem_text.endswith(f"more than the {MAX_ARGUMENTS_BYTES} accepted")


def test_unique_items_are_compared_in_linear_time_with_json_equality() -> None:
    schema = {"type": "object", "properties": {"rows": {"type": "array", "uniqueItems": True}}}
    rows = [{"n": i} for i in range(3_000)]  # jsonschema compared these pairwise: seconds
    assert within_deadline(lambda: schema_errors(schema, {"rows": rows})) == []
    assert schema_errors(schema, {"rows": [1, 1.0]}) == ["rows: [1, 1.0] has non-unique elements"]
    assert schema_errors(schema, {"rows": [{"a": [1, {"b": 2}]}, {"a": [1, {"b": 2.0}]}]}) != []
    assert schema_errors(schema, {"rows": [1, True]}) == [], "true is not the number 1 in JSON Schema"
    assert schema_errors(schema, {"rows": [[1, 2], [2, 1]]}) == []


def test_arguments_with_a_million_values_are_refused_for_their_size_at_once() -> None:
    raw = json.dumps({"rows": [0] * 1_000_000})
    _, told = within_deadline(lambda: parse_arguments(raw, {"type": "object"}))
    assert told == f"the arguments do not match the tool's input schema: (top level): {len(raw)} bytes, " + (
        f"more than the {MAX_ARGUMENTS_BYTES} accepted"
    )
