from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from refapi.extensions import db
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


def test_writes_reuse_their_compiled_statements(app):
    """Each kind of write is compiled once, not per call (issue 8: compiling the upsert cost a
    save more CPU than the database spent on it)."""
    compiled: dict[str, list[object]] = {}

    def remember(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            compiled.setdefault(statement, []).append(context.compiled)

    with app.app_context():
        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", remember)
        try:
            for round_ in range(3):
                services.save(client="tester", key=f"new-{round_}", value=round_, create_only=True)
                services.save(client="tester", key=f"new-{round_}", value=-round_)  # upsert
                services.save(client="tester", key="upserted", value=round_)
                services.save(
                    client="tester", key="upserted", value=round_, if_match=services.ANY_VERSION
                )
        finally:
            sa.event.remove(engine, "before_cursor_execute", remember)
    assert len(compiled) == 3  # create-only, upsert, conditional update
    for statement, objects in compiled.items():
        assert len({id(each) for each in objects}) == 1, statement
