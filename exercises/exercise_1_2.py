"""Exercise 1.2: group customers by age.

Both functions return ``{age: [names of the customers of that age, in alphabetical order]}``,
with every customer counted (two customers with the same name and age give the name twice).
"Alphabetical" is Python's string order (by code point, so "Zoe" sorts before "alice").
The two results are equal dicts; only the order of their keys differs (first appearance for
the first, ascending age for the second), and dict equality ignores it.

- ``group_names_by_age`` uses nothing imported (``Iterable`` in its signature is only an
  annotation): one pass over the customers puts each name in the list of its age, then each
  group is sorted on its own. Time O(n + sum of g log g) over the groups' sizes g: at worst
  O(n log n) when everyone has the same age, close to O(n) when groups are small; it never
  sorts the whole list. Space O(n).
- ``group_names_by_age_groupby`` is built on ``itertools.groupby``, which only merges adjacent
  items: the customers are first sorted by (age, name), O(n log n), then grouped in one O(n)
  pass. Space O(n) for the sorted copy.

Both accept any iterable, including a one-shot iterator. Run as a script, this file checks the
example of the exercise and prints nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    age: int


def group_names_by_age(customers: Iterable[Customer]) -> dict[int, list[str]]:
    """Names of the customers by age, each list in alphabetical order (no import used)."""
    groups: dict[int, list[str]] = {}
    for customer in customers:
        names = groups.get(customer.age)
        if names is None:
            groups[customer.age] = [customer.name]
        else:
            names.append(customer.name)
    for names in groups.values():
        names.sort()
    return groups


def group_names_by_age_groupby(customers: Iterable[Customer]) -> dict[int, list[str]]:
    """Names of the customers by age, each list in alphabetical order (with itertools.groupby)."""
    by_age_then_name = sorted(customers, key=attrgetter("age", "name"))
    return {
        age: [customer.name for customer in group]
        for age, group in groupby(by_age_then_name, key=attrgetter("age"))
    }


if __name__ == "__main__":
    customers = [
        Customer("Joe", "joe@wegroup.be", 47),
        Customer("Sara", "sara@wegroup.be", 23),
        Customer("Alice", "alice@wegroup.be", 23),
        Customer("Bob", "bob@wegroup.be", 47),
        Customer("Gary", "gary@wegroup.be", 33),
    ]
    expected = {23: ["Alice", "Sara"], 47: ["Bob", "Joe"], 33: ["Gary"]}
    assert group_names_by_age(customers) == expected
    assert group_names_by_age_groupby(customers) == expected
