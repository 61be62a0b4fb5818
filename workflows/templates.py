"""Pipeline templates and conditions: the small language of a step's `input` and `when`.

A step's `input` may use `{{ input }}` (the pipeline's input) and `{{ steps.<name>.output }}` or
`{{ steps.<name>.status }}` of an earlier step. Nothing else is evaluated: a template is text
with references, never code. Rendering runs inside the workflow, so this module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from workflows.payloads import PipelineDefinition, StepCondition, StepResult

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_REFERENCE = re.compile(r"^\s*(?:(input)|steps\.([a-z][a-z0-9_]*)\.(output|status))\s*$")


def references(template: str) -> list[tuple[str, str | None]]:
    """Every `{{ ... }}` in `template` as (text, step name or None for `input`); bad ones raise."""
    found: list[tuple[str, str | None]] = []
    for match in _PLACEHOLDER.finditer(template):
        ref = _REFERENCE.match(match.group(1))
        if ref is None:
            raise ValueError(
                f"{match.group(0)!r} is not a reference; use {{{{ input }}}}, "
                "{{ steps.<name>.output }} or {{ steps.<name>.status }}"
            )
        found.append((match.group(0), ref.group(2)))
    return found


def problems(definition: PipelineDefinition, agents: Collection[str]) -> list[tuple[str, str]]:
    """Every mistake in `definition` as (key, message): unknown agents, bad or forward references."""
    found: list[tuple[str, str]] = []
    earlier: set[str] = set()
    for index, step in enumerate(definition.steps):
        key = f"steps[{index}]"
        if step.name in earlier:
            found.append((f"{key}.name", f"step {step.name!r} is declared twice"))
        if step.agent not in agents:
            known = ", ".join(sorted(agents)) or "none"
            found.append((f"{key}.agent", f"unknown agent {step.agent!r} (known: {known})"))
        try:
            named = [(text, name) for text, name in references(step.input) if name is not None]
        except ValueError as err:
            found.append((f"{key}.input", str(err)))
            named = []
        for text, name in named:
            if name not in earlier:
                found.append((f"{key}.input", _order_problem(text, name, step.name, definition)))
        if step.when is not None and step.when.step not in earlier:
            found.append(
                (f"{key}.when.step", _order_problem(repr(step.when.step), step.when.step, step.name, definition))
            )
        earlier.add(step.name)
    return found


def _order_problem(text: str, name: str, step: str, definition: PipelineDefinition) -> str:
    if name == step:
        return f"{text} refers to step {step!r} itself"
    if any(s.name == name for s in definition.steps):
        # Steps run in order, so a later step's output cannot exist yet: a cycle in the making.
        return f"{text} refers to step {name!r}, which runs after {step!r}; a step may use only earlier steps"
    return f"{text} refers to unknown step {name!r}"


def render(template: str, pipeline_input: str, steps: Mapping[str, StepResult]) -> str:
    """The template with every reference replaced; a step that produced nothing gives ""."""

    def value(match: re.Match[str]) -> str:
        ref = _REFERENCE.match(match.group(1))
        if ref is None:  # checked when the pipeline was loaded
            return match.group(0)
        if ref.group(1):
            return pipeline_input
        step = steps[ref.group(2)]
        return step.output if ref.group(3) == "output" else step.status

    return _PLACEHOLDER.sub(value, template)


def holds(condition: StepCondition, steps: Mapping[str, StepResult]) -> bool:
    """Whether a step's `when` condition holds for the earlier step it names."""
    step = steps[condition.step]
    if condition.status is not None:
        return step.status == condition.status
    if condition.equals is not None:
        return step.output.strip() == condition.equals
    if condition.contains is not None:
        return condition.contains in step.output
    return condition.not_contains is not None and condition.not_contains not in step.output
