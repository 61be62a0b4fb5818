"""Policy on arguments: Cedar policy files on the worker, loaded and checked once, judged per call.

Each `*.cedar` file in the policy directory holds Cedar policies about one action, `Action::"call"`:
the principal is the agent (`Agent::"support"`), the resource the tool (`Tool::"tickets.close_ticket"`,
a member of `Server::"tickets"`), and the context carries the call's `arguments`, the run's
`requester` ("" when none), `server`, `tool`, whether the server is `trusted`, and the tool's
`annotations` (the four MCP hints, each with the spec's default when the server is untrusted or
says nothing, so an untrusted server's hint never opens the gate). Cedar's own semantics decide:
a matching `forbid` denies (deny overrides), else the matching `permit`s allow, and the strictest
one says how (`@decision("auto" | "approve")`, `@approvals("2")`, `@approvers("alice, group:oncall")`).
No matching policy: the agent's `[tools]` rules decide, exactly as without policy files. A policy
that fails to evaluate on a call (a missing argument, a type mismatch) denies it: a gate fails closed.
Not workflow code: it reads files; the workflow asks through the `airlock.policy_rule` local step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import cedarpy

from mcp_servers.tomlfiles import ConfigError
from workflows.payloads import Policy, Ruling

SUFFIX = ".cedar"
ACTION = "call"
ENTITY_TYPES = {"principal": {"Agent"}, "action": {"Action"}, "resource": {"Tool", "Server"}}
# Annotations Airlock reads; any other is a typo that would silently weaken a rule.
ANNOTATIONS = {"id", "decision", "approvals", "approvers", "reason", "description"}
MAX_APPROVALS = 100
# The MCP spec's defaults for each hint: what a tool is assumed to be when nobody trusted says.
HINT_DEFAULTS: dict[str, bool] = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
_I64 = 2**63
# Cedar's JSON forms that would turn an argument into an entity reference or an extension call.
_ESCAPES = {"__entity", "__extn", "__expr"}
_EVAL_ERROR = re.compile(r"error while evaluating policy `(?P<id>[^`]*)`: (?P<why>.*)", re.DOTALL)
_EOF = "unexpected end of input"


class UnjudgeableError(ValueError):
    """A call's arguments have no Cedar form (a number out of range, an escape key, a null in a list)."""


@dataclass(frozen=True)
class CedarRule:
    """One Cedar policy as Airlock reads it: where it is and what a match decides."""

    id: str
    where: str
    effect: Literal["permit", "forbid"]
    decision: Policy
    approvals: int | None = None
    approvers: tuple[str, ...] | None = None
    reason: str | None = None
    # The scope, for `may_apply`: ("All" | "==" | "in" | other, entity type, entity id).
    principal: tuple[str, str, str] = ("All", "", "")
    resource: tuple[str, str, str] = ("All", "", "")

    @property
    def name(self) -> str:
        """How audits and messages name the rule: its `@id` and where it is, or only where."""
        return self.where if self.id == self.where else f"{self.id} ({self.where})"

    def may_apply(self, agent: str, server: str, tool: str) -> bool:
        """Whether the scope can match calls of `server.tool` by `agent` (conservative: True when unsure)."""
        op, kind, ident = self.principal
        if op == "==" and kind == "Agent" and ident != agent:
            return False
        op, kind, ident = self.resource
        if op in ("==", "in") and kind == "Tool" and ident != f"{server}.{tool}":
            return False
        return not (op == "in" and kind == "Server" and ident != server)

    def strictness(self) -> tuple[int, int]:
        """Orders permits: `approve` over `auto`, then more approvals."""
        return ({"auto": 0, "approve": 1, "deny": 2}[self.decision], self.approvals or 0)


@dataclass
class PolicyRules:
    """Every Cedar policy of the worker, by id, in file order; empty when there are none."""

    rules: dict[str, CedarRule] = field(default_factory=dict)
    policy_set: Any = None
    directory: Path | None = None

    @classmethod
    def load(cls, directory: Path | None, *, agents: Mapping[str, Any] | None = None) -> PolicyRules:
        """Read `directory/*.cedar`; any error names the file and line (`ConfigError`), and nothing loads.

        `agents` (the catalog's names): a policy whose principal is an agent nobody declared is a typo.
        """
        if directory is None:
            return cls()
        if not directory.is_dir():
            raise ConfigError(f"{directory}: policy directory not found (AIRLOCK_POLICY_DIR)")
        rules: dict[str, CedarRule] = {}
        static: dict[str, Any] = {}
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"{path}: cannot be read: {err}") from None
            for start, end in _statements(text):
                line = text.count("\n", 0, _first_content(text, start, end)) + 1
                parsed = _parse(text, start, end, path)
                try:
                    # Rules are named by file and line within the directory, as audits show them.
                    rule = _rule(parsed, where=f"{path.name}:{line}", agents=agents)
                except ValueError as err:
                    raise ConfigError(f"{path}:{line}: {err}") from None
                if rule.id in rules:
                    raise ConfigError(f"{path}:{line}: @id {rule.id!r} is also the policy at {rules[rule.id].where}")
                rules[rule.id] = rule
                static[rule.id] = parsed
        if not rules:
            return cls(directory=directory)
        document = json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
        return cls(rules, cedarpy.PolicySet.from_json_str(document), directory)

    def applicable(self, agent: str, server: str, tool: str) -> list[CedarRule]:
        """The rules whose scope can match calls of `server.tool` by `agent`."""
        return [rule for rule in self.rules.values() if rule.may_apply(agent, server, tool)]

    def judge(
        self,
        *,
        agent: str,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        requester: str | None,
        trusted: bool,
        annotations: Mapping[str, bool | None],
    ) -> Ruling | None:
        """Cedar's decision on one call, or None when no policy matches it (the `[tools]` rules decide)."""
        if not self.applicable(agent, server, tool):
            return None
        try:
            context = {
                "arguments": _record(arguments),
                "requester": requester or "",
                "server": server,
                "tool": tool,
                "trusted": trusted,
                "annotations": hints(annotations, trusted=trusted),
            }
        except UnjudgeableError as err:
            return Ruling(policy="deny", rule="cedar", reason=f"its arguments cannot be judged by the policies: {err}")
        result = cedarpy.is_authorized(
            {
                "principal": _uid("Agent", agent),
                "action": _uid("Action", ACTION),
                "resource": _uid("Tool", f"{server}.{tool}"),
                "context": context,
            },
            self.policy_set,
            _entities(agent, server, tool, trusted),
        )
        errors = [str(error) for error in result.diagnostics.errors]
        if errors:
            return self._failed(errors)
        decided = [self.rules[rule_id] for rule_id in result.diagnostics.reasons if rule_id in self.rules]
        if not decided:
            return None
        if not result.allowed:
            forbid = min(decided, key=lambda rule: list(self.rules).index(rule.id))
            return Ruling(policy="deny", rule=forbid.name, reason=forbid.reason)
        order = list(self.rules)
        strictest = max(decided, key=lambda rule: (rule.strictness(), -order.index(rule.id)))
        return Ruling(
            policy=strictest.decision,
            rule=strictest.name,
            approvals=strictest.approvals,
            approvers=list(strictest.approvers) if strictest.approvers is not None else None,
            reason=strictest.reason,
        )

    def _failed(self, errors: list[str]) -> Ruling:
        """A policy that cannot be evaluated on this call denies it, naming the policy and why."""
        match = _EVAL_ERROR.match(errors[0])
        if match is not None and match.group("id") in self.rules:
            rule = self.rules[match.group("id")]
            return Ruling(
                policy="deny", rule=rule.name, reason=f"the policy could not be evaluated: {match.group('why')}"
            )
        return Ruling(policy="deny", rule="cedar", reason=f"the policies could not be evaluated: {errors[0][:300]}")


def hints(annotations: Mapping[str, bool | None], *, trusted: bool) -> dict[str, bool]:
    """The four MCP hints as policies see them: a trusted server's word, else the spec's defaults."""
    given = annotations if trusted else {}
    return {
        name: bool(given[name]) if given.get(name) is not None else default for name, default in HINT_DEFAULTS.items()
    }


def _uid(kind: str, ident: str) -> str:
    return f"{kind}::{json.dumps(ident)}"


def _entities(agent: str, server: str, tool: str, trusted: bool) -> list[dict[str, Any]]:
    """The agent, the tool and its server; the tool is `in` its server."""
    return [
        {"uid": {"type": "Agent", "id": agent}, "attrs": {"name": agent}, "parents": []},
        {"uid": {"type": "Server", "id": server}, "attrs": {"name": server, "trusted": trusted}, "parents": []},
        {
            "uid": {"type": "Tool", "id": f"{server}.{tool}"},
            "attrs": {"name": tool, "server": server},
            "parents": [{"type": "Server", "id": server}],
        },
    ]


def _record(value: dict[str, Any]) -> dict[str, Any]:
    converted = _value(value, depth=0)
    assert isinstance(converted, dict)
    return converted


def _value(value: Any, *, depth: int) -> Any:
    """`value` in Cedar's JSON form; nulls in records are left out (Cedar has no null)."""
    if depth > 64:
        raise UnjudgeableError("nested too deeply")
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -_I64 <= value < _I64:
            raise UnjudgeableError(f"{value} is outside Cedar's 64-bit integers")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnjudgeableError(f"{value} is not a finite number")
        if value.is_integer() and -_I64 <= value < _I64:
            return int(value)
        return {"__extn": {"fn": "decimal", "arg": _decimal(value)}}
    if isinstance(value, list):
        if any(item is None for item in value):
            raise UnjudgeableError("a list holds null")
        return [_value(item, depth=depth + 1) for item in value]
    if isinstance(value, dict):
        escapes = _ESCAPES.intersection(value)
        if escapes:
            raise UnjudgeableError(f"the key {sorted(escapes)[0]!r} is reserved by Cedar")
        return {key: _value(item, depth=depth + 1) for key, item in value.items() if item is not None}
    raise UnjudgeableError(f"a {type(value).__name__} has no Cedar form")


def _decimal(value: float) -> str:
    """Cedar's decimal: at most four digits after the point, within its range."""
    try:
        exact = Decimal(repr(value))
    except InvalidOperation:
        raise UnjudgeableError(f"{value} is not a number") from None
    if exact != exact.quantize(Decimal("0.0001")) or abs(exact) >= Decimal("922337203685477"):
        raise UnjudgeableError(f"{value} is not a Cedar decimal (at most four digits after the point)")
    text = format(exact, "f")
    return text if "." in text else f"{text}.0"


# --- reading files ---------------------------------------------------------------------------


def _statements(text: str) -> Iterator[tuple[int, int]]:
    """The (start, end) offsets of each top-level statement, split at `;` outside strings and comments."""
    start = i = 0
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif char == ";":
            yield start, i + 1
            start = i + 1
        i += 1
    if _first_content(text, start, len(text)) < len(text):
        yield start, len(text)


def _first_content(text: str, start: int, end: int) -> int:
    """The offset of the first character in `text[start:end]` that is neither space nor comment (`end` if none)."""
    i = start
    while i < end:
        if text[i].isspace():
            i += 1
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = end if newline < 0 else newline
        else:
            return i
    return end


def _parse(text: str, start: int, end: int, path: Path) -> dict[str, Any]:
    """One statement as Cedar's JSON policy; a syntax error names the line where the parser stopped."""
    statement = text[start:end]
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(statement))
    except ValueError as err:
        raise ConfigError(f"{path}:{_error_line(text, start, end)}: {err}") from None
    policies = list(parsed.get("staticPolicies", {}).values())
    if parsed.get("templates") or len(policies) != 1:
        line = text.count("\n", 0, _first_content(text, start, end)) + 1
        raise ConfigError(f"{path}:{line}: templates (?principal, ?resource) are not supported; write a policy")
    policy: dict[str, Any] = policies[0]
    return policy


def _error_line(text: str, start: int, end: int) -> int:
    """The first line at which the statement cut there fails for another reason than ending too soon.

    Cedar's Python binding reports no offsets, so the error is found by parsing ever longer prefixes.
    """
    line = text.count("\n", 0, start) + 1
    position = start
    while True:
        newline = text.find("\n", position, end)
        cut = end if newline < 0 else newline
        try:
            cedarpy.policies_to_json_str(text[start:cut])
        except ValueError as err:
            if _EOF not in str(err):
                return line
        if newline < 0:
            # Cut short (no `;`): the last line that says anything.
            return text.count("\n", 0, start + len(text[start:end].rstrip())) + 1
        position = newline + 1
        line += 1


def _rule(policy: dict[str, Any], *, where: str, agents: Mapping[str, Any] | None) -> CedarRule:
    """What one parsed policy decides, its annotations and scope checked."""
    annotations: dict[str, str] = policy.get("annotations") or {}
    unknown = sorted(set(annotations) - ANNOTATIONS)
    if unknown:
        raise ValueError(f"unknown annotation @{unknown[0]} (known: {', '.join(sorted(ANNOTATIONS))})")
    scope = {name: _scope(policy.get(name) or {}, name, where) for name in ENTITY_TYPES}
    op, kind, ident = scope["principal"]
    if agents is not None and kind == "Agent" and op in ("==", "in") and ident not in agents:
        raise ValueError(f"no agent {ident!r} is declared (principal)")
    op, kind, ident = scope["action"]
    if kind == "Action" and ident != ACTION:
        raise ValueError(f"the only action is Action::{json.dumps(ACTION)}, not {ident!r}")
    effect = policy.get("effect")
    decision = annotations.get("decision", "deny" if effect == "forbid" else "approve")
    if effect == "forbid" and decision != "deny":
        raise ValueError("a forbid policy denies; @decision does not apply to it")
    if effect == "permit" and decision not in ("auto", "approve"):
        raise ValueError('@decision must be "auto" or "approve" (to deny, write a forbid policy)')
    approvals = approvers = None
    if "approvals" in annotations:
        text = annotations["approvals"]
        if decision != "approve" or not text.isdigit() or not 1 <= int(text) <= MAX_APPROVALS:
            raise ValueError(f"@approvals must be a number from 1 to {MAX_APPROVALS} on an approve policy")
        approvals = int(text)
    if "approvers" in annotations:
        names = tuple(name.strip() for name in annotations["approvers"].split(",") if name.strip())
        if decision != "approve" or not names:
            raise ValueError("@approvers must name people or group:<name>s on an approve policy")
        approvers = names
    ident = annotations.get("id", where)
    return CedarRule(
        id=ident,
        where=where,
        effect="forbid" if effect == "forbid" else "permit",
        decision=decision,  # type: ignore[arg-type]
        approvals=approvals,
        approvers=approvers,
        reason=annotations.get("reason"),
        principal=scope["principal"],
        resource=scope["resource"],
    )


def _scope(constraint: dict[str, Any], name: str, where: str) -> tuple[str, str, str]:
    """(op, entity type, id) of one scope constraint; an entity type Airlock never sends is a typo."""
    op = str(constraint.get("op", "All"))
    entities = constraint.get("entities") or ([constraint["entity"]] if "entity" in constraint else [])
    if "entity_type" in constraint:
        entities = [*entities, {"type": constraint["entity_type"], "id": ""}]
    for entity in entities:
        if isinstance(entity, dict) and entity.get("type") not in ENTITY_TYPES[name]:
            known = " or ".join(sorted(ENTITY_TYPES[name]))
            raise ValueError(f"{name} {entity.get('type')!r} is not an entity Airlock sends ({known})")
    if op in ("==", "in") and isinstance(constraint.get("entity"), dict):
        entity = constraint["entity"]
        return op, str(entity.get("type", "")), str(entity.get("id", ""))
    return (op if op == "All" else "other"), "", ""
