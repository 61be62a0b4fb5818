"""Each step the workflows declare (`workflows/steps.py`) is implemented, with the same types."""

from __future__ import annotations

import typing

import pytest
from temporalio.activity import _Definition

from activities.airlock_activities import AirlockActivities
from runtime.build import activity_list
from workflows import steps


def implementations() -> dict[str, typing.Callable[..., typing.Any]]:
    """The worker's activities by their Temporal names."""
    found: dict[str, typing.Callable[..., typing.Any]] = {}
    for method in activity_list(AirlockActivities.__new__(AirlockActivities)):
        definition = _Definition.must_from_callable(method)
        assert definition.name is not None
        found[definition.name] = method
    return found


def test_every_declared_step_is_registered_and_nothing_else() -> None:
    declared = {_Definition.must_from_callable(step).name for step in steps.STEPS}
    assert declared == set(implementations())


@pytest.mark.parametrize("step", steps.STEPS, ids=lambda step: step.__name__)
def test_a_step_and_its_implementation_take_and_return_the_same_types(step: typing.Any) -> None:
    name = _Definition.must_from_callable(step).name
    assert name is not None
    implementation = implementations()[name]
    declared = typing.get_type_hints(step)
    implemented = typing.get_type_hints(implementation)
    assert declared == implemented, f"{name}: declared {declared}, implemented {implemented}"


async def test_a_declaration_called_directly_says_what_it_is() -> None:
    with pytest.raises(steps.NoImplementation, match="never directly"):
        await steps.current_approvers()
