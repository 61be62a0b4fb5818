"""Pipeline files: mistakes are refused at load, naming the file and the key; templates render."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.pipelines import load_pipelines
from runtime.settings import PROJECT_ROOT
from tests.support.catalog import load_error
from workflows.payloads import PipelineDefinition, StepCondition, StepResult
from workflows.templates import holds, render

ECHO = 'name = "echo"\ninstructions = "Repeat."\n'


def pipeline(*steps: str) -> str:
    """A pipeline file with the given `[[steps]]` bodies."""
    return "\n".join(f"[[steps]]\n{body}\n" for body in steps)


@pytest.mark.parametrize(
    ("steps", "key", "problem"),
    [
        (['name = "a"\nagent = "nobody"'], "steps[0].agent", "unknown agent 'nobody' (known: echo)"),
        (
            ['name = "a"\nagent = "echo"', 'name = "b"\nagent = "echo"\ninput = "{{ steps.c.output }}"'],
            "steps[1].input",
            "unknown step 'c'",
        ),
        # Steps run in order: naming a later step (or itself) would be a cycle.
        (
            ['name = "a"\nagent = "echo"\ninput = "{{ steps.b.output }}"', 'name = "b"\nagent = "echo"'],
            "steps[0].input",
            "refers to step 'b', which runs after 'a'",
        ),
        (['name = "a"\nagent = "echo"\ninput = "{{ steps.a.status }}"'], "steps[0].input", "itself"),
        (['name = "a"\nagent = "echo"\ninput = "{{ __import__(\'os\') }}"'], "steps[0].input", "is not a reference"),
        (
            ['name = "a"\nagent = "echo"\nwhen = { step = "b", contains = "x" }', 'name = "b"\nagent = "echo"'],
            "steps[0].when.step",
            "runs after 'a'",
        ),
        (['name = "a"\nagent = "echo"', 'name = "a"\nagent = "echo"'], "steps[1].name", "declared twice"),
        (['name = "a"\nagent = "echo"\non_failure = "retry"'], "steps.0.on_failure", "'retry'"),
        (['name = "a"\nagent = "echo"\nwhen = { step = "a" }'], "steps.0.when", "exactly one of"),
        (['name = "a"\nagent = "echo"\ncolour = "blue"'], "steps.0.colour", "unknown key"),
    ],
)
def test_bad_pipeline_is_refused_at_load(tmp_path: Path, steps: list[str], key: str, problem: str) -> None:
    message = load_error(tmp_path, agents={"echo": ECHO}, pipelines={"flow": pipeline(*steps)})
    assert str(tmp_path / "agents" / "pipelines" / "flow.toml") in message
    assert f"key {key!r}" in message, message
    assert problem in message, message


def test_bundled_pipelines_load() -> None:
    agents = {path.stem for path in (PROJECT_ROOT / "agents").glob("*.toml")}
    pipelines = load_pipelines(PROJECT_ROOT / "agents" / "pipelines", agents)
    assert [s.name for s in pipelines["incident"].steps] == ["triage", "fix", "summary"]


def test_templates_substitute_references_and_nothing_else() -> None:
    steps = {
        "a": StepResult(name="a", agent="echo", workflow_id="p/a", status="completed", output="A says {{ input }}"),
        "b": StepResult(name="b", agent="echo", workflow_id="p/b", status="skipped"),
    }
    text = render("{{input}}|{{ steps.a.output }}|{{ steps.b.status }}|{{ steps.b.output }}|{ input }", "IN", steps)
    # An output that itself looks like a template is data: it is not expanded again.
    assert text == "IN|A says {{ input }}|skipped||{ input }"
    assert holds(StepCondition(step="a", contains="says"), steps)
    assert not holds(StepCondition(step="a", not_contains="says"), steps)
    assert holds(StepCondition(step="b", status="skipped"), steps)
    assert not holds(StepCondition(step="b", equals="x"), steps)


def test_definition_needs_steps() -> None:
    with pytest.raises(ValueError, match="at least 1 item"):
        PipelineDefinition.model_validate({"steps": []})
