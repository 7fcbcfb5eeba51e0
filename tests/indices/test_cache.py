"""The health index's cached reads: kept until a refresh, and never an old value after one."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from refapi.extensions import cache, db
from refapi.indices import services
from refapi.indices.models import MonthlyIndex, Refresh
from tests.conftest import memoize_version_key
from tests.indices.conftest import HEALTH, statbel_rows, statbel_text, statbel_zip

WAIT = 30  # seconds: a bound on a hang, never a measure of speed

MONTH = "/indices/health/2020-10?base_year=2013"  # not the latest month: not in the summary
HISTORY = "/indices/health/history?base_year=2013&page=1&page_size=3"
REVISED = {**HEALTH, (2020, 10): {**HEALTH[(2020, 10)], 2013: ("110.12", "107.86")}}


def _october_2013(response):
    body = response.get_json()
    if "items" in body:
        return next(item["value"] for item in body["items"] if item["month"] == "2020-10")
    return body["value"]


def _set_behind_the_cache(app, value):
    with app.app_context():
        db.session.execute(
            sa.update(MonthlyIndex)
            .where(MonthlyIndex.base_year == 2013, MonthlyIndex.year == 2020)
            .where(MonthlyIndex.month == 10)
            .values(health=value)
        )
        db.session.commit()


@pytest.mark.parametrize("path", [MONTH, HISTORY])
def test_a_month_and_a_page_of_a_series_are_cached_until_a_refresh(
    stored, client, upstream, auth_headers, path
):
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.11
    _set_behind_the_cache(stored, 1)
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.11
    upstream.serve(statbel_zip(statbel_text(statbel_rows(REVISED))))
    assert stored.test_cli_runner().invoke(args=["indices", "refresh"]).exit_code == 0
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.12


@pytest.mark.parametrize("path", [MONTH, HISTORY])
def test_a_refresh_by_an_earlier_release_also_retires_this_releases_reads(
    stored, client, auth_headers, path
):
    # During a rolling deploy, a refresh may run from the earlier image: it commits its data and
    # its record, deletes the summary, and rotates its memoized functions' version keys; it
    # knows nothing of this release's other keys.
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.11
    _set_behind_the_cache(stored, 110.12)
    with stored.app_context():
        now = services.utcnow()
        db.session.add(
            Refresh(source="earlier release", started_at=now, finished_at=now, succeeded=True)
        )
        db.session.commit()
        cache.delete(services.SUMMARY_KEY)
        for function in ("_month_values", "_history"):
            cache.delete(memoize_version_key("refapi.indices.services", function))
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.12


@pytest.mark.parametrize("path", [MONTH, HISTORY])
def test_a_summary_an_earlier_release_cached_is_replaced_so_reads_are_cached_again(
    stored, client, auth_headers, path
):
    # An earlier release's summary has no generation, which keys this release's other reads.
    with stored.app_context():
        earlier = services._load_summary()
        del earlier["generation"]
        cache.set(services.SUMMARY_KEY, earlier)
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.11
    _set_behind_the_cache(stored, 1)
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.11


@pytest.mark.parametrize("function", ["_month_values", "_history"])
def test_a_refresh_also_retires_the_reads_earlier_releases_memoized(stored, function):
    # Earlier releases memoized a month's values and the series: rotating those functions'
    # version keys keeps their replicas, during a rolling deploy, from serving the old data.
    version_key = memoize_version_key("refapi.indices.services", function)
    with stored.app_context():
        cache.set(version_key, "v1")
        services.refresh()
        assert cache.get(version_key) != "v1"


@pytest.mark.parametrize(("path", "month"), [(MONTH, "2020-10"), (HISTORY, None)])
def test_a_read_that_loaded_old_data_before_a_refresh_cannot_cache_it_after(
    stored, client, upstream, auth_headers, monkeypatch, path, month
):
    loaded, resume = threading.Event(), threading.Event()
    name = "_load_month_values" if month else "_load_history"
    load = getattr(services, name)

    def paused(*args):
        found = load(*args)
        if threading.current_thread().name == "late-reader" and (month is None or args[0] == month):
            loaded.set()
            assert resume.wait(WAIT)
        return found

    monkeypatch.setattr(services, name, paused)
    seen = {}

    def late_read():
        seen["value"] = _october_2013(stored.test_client().get(path, headers=auth_headers))

    reader = threading.Thread(target=late_read, name="late-reader")
    reader.start()
    try:
        assert loaded.wait(WAIT)
        upstream.serve(statbel_zip(statbel_text(statbel_rows(REVISED))))
        assert stored.test_cli_runner().invoke(args=["indices", "refresh"]).exit_code == 0
    finally:
        resume.set()
        reader.join(WAIT)
    assert seen["value"] == 110.11  # what it read, before the refresh committed
    assert _october_2013(client.get(path, headers=auth_headers)) == 110.12
