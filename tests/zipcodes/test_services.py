"""Memoized reads, their invalidation, and the import's single replacing transaction."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from refapi.caching import delete_prefixed
from refapi.extensions import cache, db
from refapi.zipcodes import services
from refapi.zipcodes.models import Zipcode
from tests.conftest import memoize_version_key

WAIT = 30  # seconds: a bound on a hang, never a measure of speed


def set_factor_behind_the_cache(app, zipcode, factor):
    with app.app_context():
        db.session.merge(Zipcode(zipcode=zipcode, risk_factor=factor))
        db.session.commit()


def test_a_lookup_is_memoized_under_the_int_zipcode_the_route_parses_to(
    app, client, auth_headers, small_table
):
    with app.app_context():
        assert services.lookup(9000) == {"zipcode": 9000, "risk_factor": "B"}
    set_factor_behind_the_cache(app, 9000, "C")
    # The route's "9000" became the int 9000: the same entry as the direct call above.
    assert client.get("/zipcodes/9000", headers=auth_headers).get_json()["risk_factor"] == "B"
    with app.app_context():
        services.invalidate()
    assert client.get("/zipcodes/9000", headers=auth_headers).get_json()["risk_factor"] == "C"


def test_a_zipcode_not_found_is_memoized_too(app, client, auth_headers, small_table):
    assert client.get("/zipcodes/1200", headers=auth_headers).status_code == 404
    set_factor_behind_the_cache(app, 1200, "A")
    assert client.get("/zipcodes/1200", headers=auth_headers).status_code == 404
    with app.app_context():
        services.invalidate()
    assert client.get("/zipcodes/1200", headers=auth_headers).status_code == 200


def test_a_page_is_memoized_and_lower_case_shares_the_upper_case_entry(
    app, client, auth_headers, small_table
):
    assert client.get("/zipcodes?risk_factor=A", headers=auth_headers).get_json()["total"] == 3
    set_factor_behind_the_cache(app, 1200, "A")
    assert client.get("/zipcodes?risk_factor=a", headers=auth_headers).get_json()["total"] == 3
    with app.app_context():
        services.invalidate()
    assert client.get("/zipcodes?risk_factor=a", headers=auth_headers).get_json()["total"] == 4


def test_the_total_of_a_page_past_any_table_is_memoized_and_invalidated(
    app, client, auth_headers, small_table
):
    path = "/zipcodes?risk_factor=A&page=100&page_size=1000"
    assert client.get(path, headers=auth_headers).get_json()["total"] == 3
    set_factor_behind_the_cache(app, 1200, "A")
    assert client.get(path, headers=auth_headers).get_json()["total"] == 3
    with app.app_context():
        services.invalidate()
    assert client.get(path, headers=auth_headers).get_json()["total"] == 4


@pytest.mark.parametrize("function", ["_page", "_page_json", "_total"])
def test_an_import_also_retires_the_pages_earlier_releases_cached(app, function):
    # Earlier releases memoized pages (as dicts under "_page", then as JSON under "_page_json")
    # and totals: rotating those functions' version keys keeps their replicas, during a rolling
    # deploy, from serving the old table.
    version_key = memoize_version_key("refapi.zipcodes.services", function)
    with app.app_context():
        cache.set(version_key, "v1")
        services.invalidate()
        assert cache.get(version_key) is None


@pytest.mark.parametrize("path", ["/zipcodes?risk_factor=A", "/zipcodes?risk_factor=A&page=99"])
def test_an_import_by_an_earlier_release_also_retires_this_releases_pages(
    app, client, auth_headers, small_table, path
):
    # During a rolling deploy, `flask zipcodes import` may run from the earlier image: its
    # invalidation deletes the lookups' prefix, and with it every page and total of this one.
    assert client.get(path, headers=auth_headers).get_json()["total"] == 3
    set_factor_behind_the_cache(app, 1200, "A")
    with app.app_context():
        delete_prefixed(cache, "zipcodes.lookup.")
    assert client.get(path, headers=auth_headers).get_json()["total"] == 4


def test_an_import_is_stored_and_reads_still_answer_while_redis_is_down(make_app, tmp_path):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT=0.2)
    path = tmp_path / "table.csv"
    path.write_text("9000,B\n")
    result = app.test_cli_runner().invoke(args=["zipcodes", "import", str(path)])
    # Stored, but other servers were not told: the command says so (tests/test_cache_commands.py).
    assert "Imported 1 zipcode" in result.output
    assert result.exit_code == 1, result.output
    headers = {"X-API-Key": "tester-secret-0123456789abcdef"}
    response = app.test_client().get("/zipcodes/9000", headers=headers)
    assert response.get_json() == {"zipcode": 9000, "risk_factor": "B"}


def test_a_failed_replacement_rolls_back_every_change_it_made(app, small_table, table_rows):
    # The database refuses the last statement (the insert of 9999): the deletes and updates
    # before it, in the same transaction, are undone with it.
    with app.app_context(), pytest.raises(sa.exc.IntegrityError):
        services.replace_table(factors={1000: "A", 1315: "C", 9999: "Z"})
    assert table_rows() == small_table


@pytest.mark.parametrize(
    ("zipcode", "factor"), [(999, "A"), (10000, "A"), (9000, "D"), (9000, "a"), (9000, "")]
)
def test_the_database_itself_refuses_a_zipcode_or_factor_out_of_bounds(app, zipcode, factor):
    with app.app_context():
        db.session.add(Zipcode(zipcode=zipcode, risk_factor=factor))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()


def pause_before_commit(reached, resume):
    """While the import's transaction is open with every change made: signal, then wait."""

    def pause(session):
        reached.set()
        assert resume.wait(WAIT)

    sa.event.listen(db.session(), "before_commit", pause)


def test_readers_see_the_whole_old_table_until_the_import_commits_then_the_new_one(
    app, client, auth_headers, small_table, table_rows
):
    new_table = {1000: "A", 1001: "A", 1002: "A", 1315: "B", 9999: "C"}
    changes_made, reads_done = threading.Event(), threading.Event()
    seen = {}

    def read_during_the_import():
        assert changes_made.wait(WAIT)
        try:
            seen["table"] = table_rows()
            seen["removed"] = client.get("/zipcodes/1003", headers=auth_headers).get_json()
            seen["changed"] = client.get("/zipcodes?risk_factor=C", headers=auth_headers)
            seen["added"] = client.get("/zipcodes/9999", headers=auth_headers).status_code
        finally:
            reads_done.set()

    reader = threading.Thread(target=read_during_the_import)
    reader.start()
    with app.app_context():
        pause_before_commit(changes_made, reads_done)
        result = services.import_csv(content=b"1000 - 1002,A\n1315,B\n9999,C\n")
    reader.join(WAIT)

    assert seen["table"] == small_table
    assert seen["removed"] == {"zipcode": 1003, "risk_factor": "C"}
    assert seen["changed"].get_json()["total"] == 5
    assert seen["added"] == 404
    assert (result.added, result.changed, result.removed) == (1, 3, 6)
    assert table_rows() == new_table
    # What the reader cached from the old table is gone with it.
    assert client.get("/zipcodes/1003", headers=auth_headers).status_code == 404
    assert client.get("/zipcodes?risk_factor=C", headers=auth_headers).get_json()["total"] == 1
    assert client.get("/zipcodes/9999", headers=auth_headers).status_code == 200


def test_a_reader_looping_through_several_imports_only_ever_sees_a_whole_table(
    app, load_table, table_rows
):
    first, second = "1000 - 1099,A\n", "1050 - 1149,B\n"
    tables = [
        dict.fromkeys(range(1000, 1100), "A"),
        dict.fromkeys(range(1050, 1150), "B"),
    ]
    load_table(first)
    stop = threading.Event()
    seen, failures = [], []

    def read_until_stopped():
        try:
            while not stop.is_set() or not seen:
                seen.append(table_rows())
        except Exception as error:  # reported by the main thread
            failures.append(error)

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        for text in (second, first, second, first, second):
            load_table(text)
    finally:
        stop.set()
        reader.join(WAIT)
    assert failures == []
    assert all(table in tables for table in seen)
    assert table_rows() == tables[1]


def import_waiting_on_the_zipcodes_lock() -> bool:
    """Whether a transaction waits for a lock on this test's zipcodes table (polled, bounded)."""
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'zipcodes'::regclass"
    )
    with db.engine.connect() as monitor:
        for _ in range(WAIT * 100):
            if monitor.scalar(query):
                return True
            threading.Event().wait(0.01)
    return False


@pytest.mark.services  # it watches PostgreSQL's lock table
def test_a_second_import_waits_for_the_first_and_diffs_against_its_table(
    app, load_table, table_rows
):
    load_table("1000 - 1009,A\n")
    first_open = threading.Event()
    results = {}

    def import_second():
        assert first_open.wait(WAIT)
        results["second"] = load_table("1000 - 1004,A\n1005 - 1009,C\n")

    def let_the_second_start_and_queue(session):
        first_open.set()
        results["second waited"] = import_waiting_on_the_zipcodes_lock()

    second = threading.Thread(target=import_second)
    second.start()
    with app.app_context():
        sa.event.listen(db.session(), "before_commit", let_the_second_start_and_queue)
        results["first"] = services.import_csv(content=b"1000 - 1014,B\n")
    second.join(WAIT)

    assert results["second waited"]
    assert (results["first"].added, results["first"].changed) == (5, 10)
    # Diffed against the first import's table, not the one both started from.
    second_result = results["second"]
    assert (second_result.added, second_result.changed, second_result.removed) == (0, 10, 5)
    assert table_rows() == {
        **dict.fromkeys(range(1000, 1005), "A"),
        **dict.fromkeys(range(1005, 1010), "C"),
    }


def test_import_if_empty_writes_nothing_into_a_loaded_table(app, small_table, table_rows):
    with app.app_context():
        result = services.import_csv(content=b"1000,A\n", if_empty=True)
    assert result.skipped
    assert result.zipcodes == len(small_table)
    assert table_rows() == small_table


def test_import_sample_if_empty_loads_an_empty_table_once(app, table_rows):
    with app.app_context():
        first = services.import_sample(if_empty=True)
        second = services.import_sample(if_empty=True)
    assert (first.skipped, first.added, first.header) == (False, 8993, "zipcode,risk_factor")
    assert (second.skipped, second.zipcodes, second.added) == (True, 8993, 0)
    assert len(table_rows()) == 8993


def test_an_import_is_logged_with_what_it_changed(load_table, small_table, caplog):
    caplog.set_level("INFO", logger="refapi.zipcodes")
    load_table("1000 - 1004,C\n1315,A\n9999,B\n")
    assert caplog.messages == ["risk table replaced: 7 zipcodes, 1 added, 1 changed, 4 removed"]
