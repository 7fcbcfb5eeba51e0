"""exercise_1_2's two grouping functions against a plain reference, and against each other."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from types import CodeType, ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

MODEST = settings(max_examples=50, deadline=None)

GROUPING_FUNCTIONS = ["group_names_by_age", "group_names_by_age_groupby"]

Grouping = Callable[[list], dict[int, list[str]]]


def reference(customers: list) -> dict[int, list[str]]:
    ages = {customer.age for customer in customers}
    return {
        age: sorted(customer.name for customer in customers if customer.age == age) for age in ages
    }


# Session scope, like the module: hypothesis rejects function-scoped fixtures in @given tests.
@pytest.fixture(scope="session", params=GROUPING_FUNCTIONS)
def group(request: pytest.FixtureRequest, exercise_1_2: ModuleType) -> Grouping:
    return getattr(exercise_1_2, request.param)


# Rows of (name, email, age), made into Customers by each test with the loaded module's class.
# Small pools of names and ages make shared ages and identical names frequent; the alternatives
# add any text (case, unicode) and integers of any size and sign.
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["Alice", "alice", "Bob", "Joe", "Sara", ""]) | st.text(max_size=6),
        st.text(max_size=6),
        st.integers(min_value=-2, max_value=3) | st.integers(),
    ),
    max_size=30,
)


def customers_from(module: ModuleType, rows: list[tuple[str, str, int]]) -> list:
    return [module.Customer(name, email, age) for name, email, age in rows]


def test_the_example_of_the_exercise(exercise_1_2: ModuleType, group: Grouping) -> None:
    customer = exercise_1_2.Customer
    customers = [
        customer("Joe", "joe@wegroup.be", 47),
        customer("Sara", "sara@wegroup.be", 23),
        customer("Alice", "alice@wegroup.be", 23),
        customer("Bob", "bob@wegroup.be", 47),
        customer("Gary", "gary@wegroup.be", 33),
    ]
    assert group(customers) == {23: ["Alice", "Sara"], 47: ["Bob", "Joe"], 33: ["Gary"]}


def test_no_customers_give_no_groups(group: Grouping) -> None:
    assert group([]) == {}


@MODEST
@given(rows=ROWS)
def test_matches_the_reference(exercise_1_2: ModuleType, group: Grouping, rows: list) -> None:
    customers = customers_from(exercise_1_2, rows)
    assert group(customers) == reference(customers)


@MODEST
@given(rows=ROWS)
@example(rows=[])
@example(rows=[("b", "", 1), ("a", "", 1), ("a", "", 1), ("c", "", -1)])
def test_the_two_functions_agree_on_every_input(exercise_1_2: ModuleType, rows: list) -> None:
    customers = customers_from(exercise_1_2, rows)
    assert exercise_1_2.group_names_by_age(customers) == exercise_1_2.group_names_by_age_groupby(
        customers
    )


@MODEST
@given(rows=ROWS)
def test_a_one_shot_iterator_is_enough(
    exercise_1_2: ModuleType, group: Grouping, rows: list
) -> None:
    customers = customers_from(exercise_1_2, rows)
    assert group(iter(customers)) == reference(customers)


def test_large_input_matches_the_reference(exercise_1_2: ModuleType, group: Grouping) -> None:
    generator = random.Random(1)
    customers = [
        exercise_1_2.Customer(f"name{generator.randrange(10_000)}", "", generator.randrange(-5, 15))
        for _ in range(20_000)
    ]
    assert group(customers) == reference(customers)


def _names_used(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            names |= _names_used(constant)
    return names


def test_the_plain_version_uses_nothing_imported(exercise_1_2: ModuleType) -> None:
    with open(exercise_1_2.__file__, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported  # the groupby version does import: the check below has something to find
    assert not _names_used(exercise_1_2.group_names_by_age.__code__) & imported
