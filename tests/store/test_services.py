from __future__ import annotations

import json

import pytest

from refapi.store import services
from refapi.store.errors import KeyNotFound, ValueTooLarge, VersionMismatch


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("a", "b"),
        ("user/", "user0"),
        ("z\U0010ffff", "{"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
        ("é", "ê"),
    ],
)
def test_prefix_upper_bound_is_the_least_string_above_the_prefix_range(prefix, bound):
    assert services.prefix_upper_bound(prefix) == bound


def test_value_size_counts_compact_utf8_json():
    assert services.value_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert services.value_size("é") == len('"é"'.encode())


def test_services_work_without_a_request(app):
    with app.app_context():
        saved = services.save(client="tester", key="k", value=[1])
        assert saved.created
        entry = services.read(client="tester", key="k")
        assert entry.version == 1
        assert json.loads(entry.body)["value"] == [1]
        with pytest.raises(VersionMismatch) as mismatch:
            services.save(client="tester", key="k", value=2, if_match=frozenset({5}))
        assert mismatch.value.extra == {"current_version": 1}
        with pytest.raises(ValueTooLarge):
            services.save(client="tester", key="k", value="x" * 600_000)
        services.delete(client="tester", key="k", if_match="*")
        with pytest.raises(KeyNotFound):
            services.read(client="tester", key="k")
