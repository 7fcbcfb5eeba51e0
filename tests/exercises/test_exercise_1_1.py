"""exercise_1_1.common_integers against a plain quadratic reference, on generated inputs."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

# Modest: CI runs the suite five times on two cores. No deadline: a loaded machine is not a bug.
MODEST = settings(max_examples=50, deadline=None)

# A narrow range makes duplicates and common values frequent, and includes negatives and zero.
crowded_integers = st.lists(st.integers(min_value=-8, max_value=8), max_size=30)


def reference(first: list[int], second: list[int]) -> list[int]:
    common: list[int] = []
    for number in first:
        if number in second and number not in common:
            common.append(number)
    return common


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ([1, 5, 70, 24, 155], [17, 24, 25, 24, 68, 155], [24, 155]),
        ([5, 109, 49, 3], [63, 1, 44, 9], []),
        ([1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 1], [1]),
    ],
)
def test_the_examples_of_the_exercise(
    exercise_1_1: ModuleType, first: list[int], second: list[int], expected: list[int]
) -> None:
    assert exercise_1_1.common_integers(first, second) == expected


@MODEST
@given(first=crowded_integers, second=crowded_integers)
@example(first=[], second=[])
@example(first=[], second=[1, 2])
@example(first=[1, 2], second=[])
@example(first=[-3, 3, -3, 0], second=[0, -3])
def test_matches_the_reference_with_duplicates_empty_lists_and_negatives(
    exercise_1_1: ModuleType, first: list[int], second: list[int]
) -> None:
    assert exercise_1_1.common_integers(first, second) == reference(first, second)


@MODEST
@given(first=st.lists(st.integers()), second=st.lists(st.integers()))
def test_matches_the_reference_on_integers_of_any_size(
    exercise_1_1: ModuleType, first: list[int], second: list[int]
) -> None:
    assert exercise_1_1.common_integers(first, second) == reference(first, second)


@MODEST
@given(first=crowded_integers, second=crowded_integers)
def test_leaves_its_inputs_unchanged(
    exercise_1_1: ModuleType, first: list[int], second: list[int]
) -> None:
    first_before, second_before = list(first), list(second)
    exercise_1_1.common_integers(first, second)
    assert (first, second) == (first_before, second_before)


@MODEST
@given(
    first=crowded_integers,
    second=crowded_integers,
    repeats=st.integers(min_value=1, max_value=400),
)
def test_repeating_the_inputs_many_times_changes_nothing(
    exercise_1_1: ModuleType, first: list[int], second: list[int], repeats: int
) -> None:
    # Up to 12 000 items per list, still checked against the reference on the short lists.
    assert exercise_1_1.common_integers(first * repeats, second * repeats) == reference(
        first, second
    )


def test_large_inputs_give_the_common_values_in_order(exercise_1_1: ModuleType) -> None:
    first = list(range(-200_000, 200_000)) * 2
    second = list(reversed(range(0, 600_000, 3)))
    # Finishing at all shows the linear algorithm: a quadratic one needs ~10^11 comparisons.
    assert exercise_1_1.common_integers(first, second) == list(range(0, 200_000, 3))
