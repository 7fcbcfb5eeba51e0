"""The summary most reads answer from: consistent when a refresh commits while it is read."""

from __future__ import annotations

import threading

from refapi.indices import services
from tests.indices.conftest import statbel_zip


def test_a_refresh_committed_while_the_summary_is_read_is_never_a_wrong_year(
    make_indices_app, auth_headers, monkeypatch, tmp_path
):
    # The summary's queries share no snapshot. It read the latest months (none yet), a refresh
    # committed, then it read the refresh times (one finished): data "retrieved" but empty, so
    # the first readers of a new server were told 400 WRONG_YEAR, valid_base_years [].
    app = make_indices_app(STATBEL_URL="")  # no refresh but the one this test commits
    source = tmp_path / "statbel.zip"
    source.write_bytes(statbel_zip())
    load_latest = services._load_latest_months
    raced: list[str] = []

    def committed_meanwhile():
        found = load_latest()
        if not raced:
            raced.append("refresh")

            def refresh():
                with app.app_context():
                    services.refresh(path=str(source))

            other = threading.Thread(target=refresh)
            other.start()
            other.join(30)
        return found

    monkeypatch.setattr(services, "_load_latest_months", committed_meanwhile)
    client = app.test_client()
    first = client.get("/indices/health?base_year=2013", headers=auth_headers)
    assert raced == ["refresh"]
    assert first.status_code == 503, first.get_json()
    assert client.get("/indices/health?base_year=2013", headers=auth_headers).status_code == 200
