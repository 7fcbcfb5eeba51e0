"""Stale or absent data is refreshed on request, once, and failures never lose stored data."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from refapi.extensions import cache, db
from refapi.indices import services, statbel
from refapi.indices.models import MonthlyIndex
from tests.indices.conftest import (
    FAILURES,
    HEALTH,
    age_data,
    statbel_rows,
    statbel_text,
    statbel_zip,
    stored_rows,
)

WITH_FEBRUARY = {**HEALTH, (2021, 2): {1988: ("183.01", "179.90"), 2013: ("110.50", "108.40")}}


def _serve_february(upstream):
    upstream.serve(statbel_zip(statbel_text(statbel_rows(WITH_FEBRUARY, pending_month=False))))


def _fail(upstream, failure):
    if failure == "timeout":
        upstream.hang = True
    else:
        upstream.serve(**FAILURES[failure])


UPSTREAM_FAILURES = ["http-500", "timeout", "truncated-zip", "html", "empty"]


def test_first_request_with_nothing_stored_downloads_and_answers(client, upstream, auth_headers):
    response = client.get("/indices/health/2020-10?base_year=2013", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["value"] == 110.11
    assert response.get_json()["stale"] is False
    assert upstream.hits == 1


def test_fresh_data_is_answered_without_asking_statbel(stored, client, upstream, auth_headers):
    for _ in range(3):
        assert client.get("/indices/health", headers=auth_headers).status_code == 200
    assert upstream.hits == 1


def test_stale_data_is_answered_at_once_and_refreshed_in_the_background(
    stored, client, upstream, auth_headers
):
    age_data(stored)
    _serve_february(upstream)
    body = client.get("/indices/health?base_year=1988", headers=auth_headers).get_json()
    assert (body["month"], body["stale"]) == ("2021-01", True)
    services.wait_for_background_refreshes()
    assert upstream.hits == 2
    body = client.get("/indices/health?base_year=1988", headers=auth_headers).get_json()
    assert (body["month"], body["value"], body["stale"]) == ("2021-02", 183.01, False)
    assert upstream.hits == 2


@pytest.mark.parametrize("failure", UPSTREAM_FAILURES)
def test_a_failed_refresh_serves_stored_data_marked_stale(
    stored, client, upstream, auth_headers, failure
):
    age_data(stored)
    before = stored_rows(stored)
    _fail(upstream, failure)
    response = client.get("/indices/health?base_year=2013", headers=auth_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["month"], body["value"], body["stale"]) == ("2021-01", 110.35, True)
    services.wait_for_background_refreshes()
    assert upstream.hits == 2
    assert stored_rows(stored) == before
    body = client.get("/indices/health?base_year=2013", headers=auth_headers).get_json()
    assert (body["month"], body["stale"]) == ("2021-01", True)


@pytest.mark.parametrize("failure", UPSTREAM_FAILURES)
def test_nothing_stored_and_statbel_failing_is_503_with_retry_after(
    client, upstream, auth_headers, failure
):
    _fail(upstream, failure)
    response = client.get("/indices/health", headers=auth_headers)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "UPSTREAM_UNAVAILABLE"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert f"try again in {retry_after} seconds" in response.get_json()["detail"]
    assert stored_rows(client.application) == []


NOTHING_STORED_REQUESTS = [
    ("GET", "/indices/health", None),
    ("GET", "/indices/health/2020-10", None),
    ("GET", "/indices/health/history?base_year=2013", None),
    (
        "POST",
        "/indices/health/indexation",
        {"amount": 850, "base_year": 2013, "start_month": "2019-04", "target_month": "2020-09"},
    ),
]


@pytest.mark.parametrize(("method", "url", "body"), NOTHING_STORED_REQUESTS)
def test_nothing_stored_and_no_upstream_address_is_503_that_says_so_without_retry_after(
    make_indices_app, upstream, auth_headers, method, url, body
):
    # Nothing will ever be downloaded: the answer must not blame Statbel, nor invite a retry.
    client = make_indices_app(STATBEL_URL="").test_client()
    response = client.open(url, method=method, json=body, headers=auth_headers)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "UPSTREAM_UNAVAILABLE"
    assert "no upstream is configured" in problem["detail"]
    assert "REFAPI_STATBEL_URL" in problem["detail"]
    assert "flask indices refresh --file" in problem["detail"]
    assert "Statbel" not in problem["detail"]
    assert "Retry-After" not in response.headers
    assert upstream.hits == 0


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/indices/health?base_year=1914", None),
        ("GET", "/indices/health/2020-10?base_year=1914", None),
        ("GET", "/indices/health/history?base_year=1914", None),
        (
            "POST",
            "/indices/health/indexation",
            {"amount": 1, "base_year": 1914, "start_month": "2020-10", "target_month": "2020-10"},
        ),
    ],
)
def test_nothing_stored_a_well_formed_base_year_is_503_saying_it_cannot_be_checked(
    make_indices_app, auth_headers, method, url, body
):
    # With no data, which base years have a health index is unknown: not a WRONG_YEAR.
    client = make_indices_app(STATBEL_URL="").test_client()
    response = client.open(url, method=method, json=body, headers=auth_headers)
    assert response.status_code == 503
    assert response.get_json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert "Whether base year 1914 has a health index is unknown" in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/indices/health?base_year=abc", None),
        ("GET", "/indices/health/2020-10?base_year=%C2%B2", None),
        ("GET", "/indices/health/history?base_year=%EF%BC%92%EF%BC%90%EF%BC%91%EF%BC%93", None),
        (
            "POST",
            "/indices/health/indexation",
            {"amount": 1, "base_year": -2013, "start_month": "2020-10", "target_month": "2020-10"},
        ),
    ],
)
def test_nothing_stored_a_malformed_base_year_is_still_wrong_year(
    make_indices_app, upstream, auth_headers, method, url, body
):
    # No data can make it valid (as no data makes a malformed month valid): a 400, not a 503
    # inviting a retry that cannot help. No base year is valid while nothing is stored.
    client = make_indices_app().test_client()
    upstream.serve(**FAILURES["http-500"])
    response = client.open(url, method=method, json=body, headers=auth_headers)
    assert response.status_code == 400
    problem = response.get_json()
    assert problem["code"] == "WRONG_YEAR"
    assert problem["valid_base_years"] == []
    assert "no health index is stored yet" in problem["detail"]
    assert upstream.hits == 0


def test_after_a_failure_statbel_is_not_asked_again_before_the_retry_interval(
    stored, client, upstream, auth_headers
):
    age_data(stored)
    _fail(upstream, "http-500")
    for _ in range(3):
        assert client.get("/indices/health", headers=auth_headers).get_json()["stale"] is True
        services.wait_for_background_refreshes()
    assert upstream.hits == 2


def test_after_the_retry_interval_a_request_tries_again(stored, client, upstream, auth_headers):
    age_data(stored)
    _fail(upstream, "http-500")
    client.get("/indices/health", headers=auth_headers)
    services.wait_for_background_refreshes()
    age_data(stored, hours=1)  # the failed attempt is now an hour old
    _serve_february(upstream)
    assert client.get("/indices/health", headers=auth_headers).get_json()["stale"] is True
    services.wait_for_background_refreshes()
    body = client.get("/indices/health", headers=auth_headers).get_json()
    assert (body["month"], body["stale"]) == ("2021-02", False)
    assert upstream.hits == 3


def test_twenty_concurrent_requests_on_stale_data_reach_statbel_once(
    make_indices_app, upstream, auth_headers
):
    # Two apps on one database, each with its own cache: two worker processes.
    # A budget longer than the join below: even the request that starts the refresh must not
    # spend it while stored data can answer.
    workers = [make_indices_app(INDEX_REFRESH_BUDGET=10.0, STATBEL_TIMEOUT=15.0) for _ in range(2)]
    with workers[0].app_context():
        services.refresh()
    age_data(workers[0])
    for worker in workers:
        with worker.app_context():
            cache.clear()
    _serve_february(upstream)
    upstream.held = True  # Statbel takes its time: the refresh cannot finish meanwhile
    start = threading.Barrier(20)
    answers = []

    def ask(worker):
        client = worker.test_client()
        start.wait()
        response = client.get("/indices/health?base_year=2013", headers=auth_headers)
        body = response.get_json()
        answers.append((response.status_code, body["month"], body["stale"]))

    threads = [threading.Thread(target=ask, args=(workers[i % 2],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=4)  # far below the budget and STATBEL_TIMEOUT: nobody waits
    assert not any(thread.is_alive() for thread in threads)
    # Everyone answered from stored data while the one refresh waited on Statbel.
    assert answers == [(200, "2021-01", True)] * 20
    upstream.release.set()
    services.wait_for_background_refreshes()
    assert upstream.hits == 2  # the first download, then one refresh
    for worker in workers:
        # In configuration A each app's SimpleCache is its own, as in separate processes.
        with worker.app_context():
            cache.clear()
        client = worker.test_client()
        body = client.get("/indices/health?base_year=2013", headers=auth_headers).get_json()
        assert (body["month"], body["stale"]) == ("2021-02", False)


def test_a_refresh_running_elsewhere_is_not_duplicated(stored, client, upstream, auth_headers):
    age_data(stored)
    with stored.app_context():
        holder = services._acquire_lease()  # another worker process is refreshing
    assert holder is not None
    body = client.get("/indices/health", headers=auth_headers).get_json()
    assert body["stale"] is True
    assert upstream.hits == 1
    result = stored.test_cli_runner().invoke(args=["indices", "refresh"])
    assert result.exit_code == 1
    assert "another refresh is running" in result.output


def test_the_refresh_lease_outlasts_the_longest_download(app):
    # statbel.download gives up at its limit: a refresh never outlives its lease, so no other
    # refresh can take it over meanwhile.
    with app.app_context():
        lease = services._lease_seconds()
    assert lease > statbel.longest_download(app.config["STATBEL_TIMEOUT"])


def test_an_expired_lease_is_taken_over(stored, client, upstream, auth_headers):
    age_data(stored)
    with stored.app_context():
        holder = services._acquire_lease()
        services._release_lease(holder)  # as if its holder died and the lease expired
    _serve_february(upstream)
    assert client.get("/indices/health", headers=auth_headers).get_json()["stale"] is True
    services.wait_for_background_refreshes()
    assert client.get("/indices/health", headers=auth_headers).get_json()["month"] == "2021-02"


def test_a_refresh_is_visible_to_the_next_read_at_once(stored, client, upstream, auth_headers):
    assert client.get("/indices/health", headers=auth_headers).get_json()["month"] == "2021-01"
    _serve_february(upstream)
    assert stored.test_cli_runner().invoke(args=["indices", "refresh"]).exit_code == 0
    assert client.get("/indices/health", headers=auth_headers).get_json()["month"] == "2021-02"
    response = client.get("/indices/health/2021-02?base_year=2013", headers=auth_headers)
    assert response.get_json()["value"] == 110.5


def test_without_an_upstream_address_stale_data_is_served_without_refreshing(
    make_indices_app, upstream, auth_headers, tmp_path
):
    app = make_indices_app(STATBEL_URL="")
    path = tmp_path / "cpi.zip"
    path.write_bytes(statbel_zip())
    with app.app_context():
        services.refresh(path=str(path))
    age_data(app)
    body = app.test_client().get("/indices/health", headers=auth_headers).get_json()
    assert (body["month"], body["stale"]) == ("2021-01", True)
    assert upstream.hits == 0


def test_reads_are_cached_until_a_refresh(stored, client, upstream, auth_headers):
    url = "/indices/health/2020-10?base_year=2013"
    assert client.get(url, headers=auth_headers).get_json()["value"] == 110.11
    with stored.app_context():
        db.session.execute(
            sa.update(MonthlyIndex)
            .where(MonthlyIndex.base_year == 2013, MonthlyIndex.year == 2020)
            .values(health=1)
        )
        db.session.commit()
    assert client.get(url, headers=auth_headers).get_json()["value"] == 110.11
    revised = {**HEALTH, (2020, 10): {**HEALTH[(2020, 10)], 2013: ("110.12", "107.86")}}
    upstream.serve(statbel_zip(statbel_text(statbel_rows(revised))))
    assert stored.test_cli_runner().invoke(args=["indices", "refresh"]).exit_code == 0
    assert client.get(url, headers=auth_headers).get_json()["value"] == 110.12


@pytest.mark.parametrize("address", ["none", "failing"])
def test_with_nothing_stored_an_import_from_another_process_is_served_at_once(
    make_indices_app, upstream, auth_headers, tmp_path, address
):
    # "Nothing stored yet" is not cached: with the in-process cache an import run from the
    # command line (another process) cannot empty the server's cache, and the first data waited
    # for the cached 503 to expire or for the next retry. Statbel is still asked only once per
    # retry interval: the interval is kept in the database, not in the cache.
    url = upstream.url if address == "failing" else ""
    upstream.serve(**FAILURES["http-500"])
    server = make_indices_app(STATBEL_URL=url)
    command_line = make_indices_app(STATBEL_URL=url)  # in A, a cache of its own: another process
    client = server.test_client()
    for _ in range(3):
        assert client.get("/indices/health", headers=auth_headers).status_code == 503
        services.wait_for_background_refreshes()
    path = tmp_path / "cpi.zip"
    path.write_bytes(statbel_zip())
    result = command_line.test_cli_runner().invoke(args=["indices", "refresh", "--file", str(path)])
    assert result.exit_code == 0, result.output
    response = client.get("/indices/health?base_year=2013", headers=auth_headers)
    assert response.status_code == 200
    assert (response.get_json()["month"], response.get_json()["stale"]) == ("2021-01", False)
    assert upstream.hits == (1 if url else 0)
