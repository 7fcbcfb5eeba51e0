"""Exercise 1.1: the integers found in both of two lists.

``common_integers(first, second)`` returns each integer that occurs in both lists exactly once,
in the order of its first appearance in ``first``.

Complexity: O(len(first) + len(second)) time on average, O(len(second)) extra space. ``second``
is turned into a set once (one pass), then ``first`` is walked once; each membership test and
insertion is O(1) on average, since a set is a hash table. A ``seen`` set keeps every result once
without the O(n) cost of ``x not in result`` on a list. (The naive double loop is
O(len(first) * len(second)).)

Run as a script, it checks the examples of the exercise and prints nothing.
"""


def common_integers(first: list[int], second: list[int]) -> list[int]:
    """The integers in both lists, each once, in order of first appearance in ``first``."""
    in_second = set(second)
    seen: set[int] = set()
    common = []
    for number in first:
        if number in in_second and number not in seen:
            seen.add(number)
            common.append(number)
    return common


if __name__ == "__main__":
    assert common_integers([1, 5, 70, 24, 155], [17, 24, 25, 24, 68, 155]) == [24, 155]
    assert common_integers([5, 109, 49, 3], [63, 1, 44, 9]) == []
    assert common_integers([1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 1]) == [1]
