"""Cedar policies on arguments (activities/rules.py), in-process: loading, errors by file and line, rulings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from activities.rules import PolicyRules
from mcp_servers.tomlfiles import ConfigError
from workflows.payloads import Ruling

POLICIES = """\
// Closing a ticket: what each resolution needs.
@id("duplicates-run-alone")
@decision("auto")
permit(principal == Agent::"support", action == Action::"call", resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "duplicate" };

@id("fixed-needs-one")
permit(principal == Agent::"support", action, resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "fixed" };

@id("wont-fix-needs-two")
@approvals("2")
@approvers("alice, group:oncall")
permit(principal == Agent::"support", action, resource == Tool::"tickets.close_ticket")
when { context.arguments.resolution == "wont_fix" };

@id("never-invalid")
@reason("closing as invalid hides a report")
forbid(principal, action, resource in Server::"tickets")
when { context.arguments has resolution && context.arguments.resolution == "invalid" };
"""


def rules_in(tmp_path: Path, **files: str) -> PolicyRules:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return PolicyRules.load(directory, agents={"support": None, "billing": None})


def close(rules: PolicyRules, resolution: str, *, agent: str = "support") -> Ruling | None:
    return rules.judge(
        agent=agent,
        server="tickets",
        tool="close_ticket",
        arguments={"ticket_id": "T-1", "resolution": resolution},
        requester="svc-billing",
        trusted=True,
        annotations={"readOnlyHint": False},
    )


def test_one_argument_gives_auto_one_approval_two_approvals_or_deny(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, **{"tickets.cedar": POLICIES})
    assert close(rules, "duplicate") == Ruling(policy="auto", rule="duplicates-run-alone (tickets.cedar:2)")
    assert close(rules, "fixed") == Ruling(policy="approve", rule="fixed-needs-one (tickets.cedar:7)")
    assert close(rules, "wont_fix") == Ruling(
        policy="approve", rule="wont-fix-needs-two (tickets.cedar:11)", approvals=2, approvers=["alice", "group:oncall"]
    )
    assert close(rules, "invalid") == Ruling(
        policy="deny", rule="never-invalid (tickets.cedar:17)", reason="closing as invalid hides a report"
    )
    # No policy matches: the agent's `[tools]` rules decide, as without policy files.
    assert close(rules, "cannot_reproduce") is None
    assert close(rules, "fixed", agent="billing") is None


def test_forbid_overrides_permit_and_the_strictest_permit_wins(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        **{
            "a.cedar": """\
            @decision("auto")
            permit(principal, action, resource);
            @approvals("3")
            permit(principal, action, resource) when { context.arguments.amount > 100 };
            """,
            "b.cedar": """\
            forbid(principal, action, resource) when { context.arguments.amount > 1000 };
            """,
        },
    )

    def pay(amount: int | float) -> Ruling | None:
        return rules.judge(
            agent="billing",
            server="pay",
            tool="refund",
            arguments={"amount": amount},
            requester=None,
            trusted=False,
            annotations={},
        )

    assert pay(10) == Ruling(policy="auto", rule="a.cedar:1")
    assert pay(500) == Ruling(policy="approve", rule="a.cedar:3", approvals=3)
    assert pay(5000) == Ruling(policy="deny", rule="b.cedar:1")
    # A policy that cannot be evaluated on a call (a decimal compared as an integer) denies it.
    failed = pay(12.5)
    assert failed is not None and failed.policy == "deny" and failed.rule == "a.cedar:3"
    assert "could not be evaluated" in (failed.reason or "")


def test_an_untrusted_servers_hints_never_reach_a_policy(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        **{
            "reads.cedar": '@decision("auto")\n'
            "permit(principal, action, resource) when { context.annotations.readOnlyHint };\n"
        },
    )

    def read(trusted: bool) -> Ruling | None:
        return rules.judge(
            agent="support",
            server="crm",
            tool="export",
            arguments={},
            requester=None,
            trusted=trusted,
            annotations={"readOnlyHint": True},
        )

    assert read(trusted=True) == Ruling(policy="auto", rule="reads.cedar:1")
    assert read(trusted=False) is None


def test_arguments_cedar_would_read_as_entities_are_denied(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, **{"all.cedar": "permit(principal, action, resource);\n"})
    ruling = rules.judge(
        agent="support",
        server="tickets",
        tool="close_ticket",
        arguments={"x": {"__entity": {"type": "Agent", "id": "root"}}},
        requester=None,
        trusted=True,
        annotations={},
    )
    assert ruling is not None and ruling.policy == "deny" and "reserved by Cedar" in (ruling.reason or "")


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        (
            "permit(principal, action, resource);\n\n// two\n"
            "permit(principal, action, resource)\nwhen { context.x <\n};\n",
            6,
            "unexpected token",
        ),
        ("permit(principal, action, resource);\npermit(principal, acton, resource);\n", 2, "acton"),
        ('@approval("2")\npermit(principal, action, resource);\n', 1, "unknown annotation @approval"),
        ('@decision("auto")\nforbid(principal, action, resource);\n', 1, "a forbid policy denies"),
        ('@approvals("0")\npermit(principal, action, resource);\n', 1, "@approvals must be"),
        ('\n\npermit(principal == Agent::"nobody", action, resource);\n', 3, "no agent 'nobody'"),
        ('permit(principal == Agnt::"support", action, resource);\n', 1, "'Agnt' is not an entity"),
        ('permit(principal, action == Action::"delete", resource);\n', 1, "the only action"),
        ("permit(principal, action, resource)\n", 1, "unexpected end of input"),
    ],
)
def test_a_policy_error_names_file_and_line(tmp_path: Path, text: str, where: int, why: str) -> None:
    with pytest.raises(ConfigError) as error:
        rules_in(tmp_path, **{"broken.cedar": text})
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'policies' / 'broken.cedar'}:{where}: "), message
    assert why in message


def test_duplicate_ids_name_both_places(tmp_path: Path) -> None:
    twice = '@id("x")\npermit(principal, action, resource);\n'
    with pytest.raises(ConfigError, match=r"b\.cedar:1: @id 'x' is also the policy at a\.cedar:1"):
        rules_in(tmp_path, **{"a.cedar": twice, "b.cedar": twice})


def test_scope_says_which_tools_a_policy_may_decide(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, **{"tickets.cedar": POLICIES})
    assert [rule.id for rule in rules.applicable("support", "tickets", "close_ticket")] == [
        "duplicates-run-alone",
        "fixed-needs-one",
        "wont-fix-needs-two",
        "never-invalid",
    ]
    assert [rule.id for rule in rules.applicable("billing", "tickets", "get_ticket")] == ["never-invalid"]
    assert rules.applicable("billing", "crm", "export") == []
    assert PolicyRules.load(None).applicable("support", "tickets", "close_ticket") == []
