from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit

import pytest
import sqlalchemy as sa

from refapi.extensions import cache, db
from refapi.store.models import MAX_VERSION, Entry
from refapi.store.schemas import MAX_VALUE_DEPTH


def _path(key: str) -> str:
    # Everything but "/" percent-encoded, as a client builds the URL.
    return quote(key, safe="/")


@pytest.fixture
def save(client, auth_headers):
    def save(key, value, headers=None, auth=None):
        return client.post(
            "/save",
            json={"key": key, "value": value},
            headers={**(auth or auth_headers), **(headers or {})},
        )

    return save


@pytest.fixture
def get(client, auth_headers):
    def get(key, headers=None, auth=None):
        headers = {**(auth or auth_headers), **(headers or {})}
        return client.get("/get/" + _path(key), headers=headers)

    return get


@pytest.fixture
def delete(client, auth_headers):
    def delete(key, headers=None, auth=None):
        return client.delete(
            "/delete/" + _path(key), headers={**(auth or auth_headers), **(headers or {})}
        )

    return delete


def test_save_creates_with_version_1_etag_and_location(save):
    response = save("greeting", {"text": "hello"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["key"] == "greeting"
    assert body["value"] == {"text": "hello"}
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("+00:00")
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == "/get/greeting"


def test_save_over_an_existing_key_is_200_and_adds_one_to_the_version(save):
    created = save("k", 1).get_json()
    response = save("k", 2)
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == 2
    assert body["value"] == 2
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] >= created["updated_at"]
    assert response.headers["ETag"] == '"2"'
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, 2.5, True, None, "x"]}},
        [1, "two", [3]],
        "just text",
        "",
        0,
        -12.75,
        10**30,
        True,
        False,
        None,
        {},
        [],
        {"emoji": "🦄", "accents": "Liège, Mons-en-Barœul", "rtl": "שלום"},
    ],
)
def test_every_kind_of_json_value_round_trips(save, get, value):
    assert save("k", value).status_code == 201
    response = get("k")
    assert response.status_code == 200
    assert response.get_json()["value"] == value
    assert response.headers["ETag"] == '"1"'


@pytest.mark.parametrize(
    "key",
    [
        "a/b/c",
        "/leading",
        "trailing/",
        "double//slash",
        "/",
        "//",
        "with space",
        " padded ",
        "100%",
        "%2F-is-literal",
        "question?mark#hash&amp=1",
        "émoji 🦄 キー",
        "..",
        "k" * 256,
        "🦄" * 256,
        "+plus;semi:colon,comma@at",
        'quote"back\\slash',
    ],
)
def test_keys_with_any_printable_character_round_trip(save, get, delete, client, auth_headers, key):
    saved = save(key, {"for": key})
    assert saved.status_code == 201
    assert saved.get_json()["key"] == key
    read = get(key)
    assert read.status_code == 200
    assert read.get_json()["key"] == key
    assert read.get_json()["value"] == {"for": key}
    # The Location header leads back to the same entry.
    assert client.get(saved.headers["Location"], headers=auth_headers).get_json()["key"] == key
    assert client.get("/keys", headers=auth_headers).get_json()["items"][0]["key"] == key
    assert delete(key).status_code == 204
    assert get(key).status_code == 404


@pytest.mark.parametrize(
    ("key", "location"),
    [
        ("x/../y", "/get/x%2F..%2Fy"),
        ("a/b/..", "/get/a%2Fb%2F.."),
        ("./z", "/get/.%2Fz"),
        ("t/.", "/get/t%2F."),
        ("/..", "/get/%2F.."),
        ("..", "/get/%2E%2E"),
        (".", "/get/%2E"),
        # No dot segment: the key as it is, slashes included.
        ("a/b/c", "/get/a/b/c"),
        ("...", "/get/..."),
        (".hidden/x.y", "/get/.hidden/x.y"),
        ("a..b/..c", "/get/a..b/..c"),
    ],
)
def test_location_survives_removal_of_dot_segments(save, client, auth_headers, key, location):
    # The keys that /get/x/../y and /get/a/b/.. would resolve to.
    save("y", "another key")
    save("a/", "another key")
    saved = save(key, "this key")
    assert saved.headers["Location"] == location
    # As a client following it resolves it (RFC 3986, section 5.2): nothing to remove.
    resolved = urlsplit(urljoin("http://localhost/save", location)).path
    assert resolved == location
    assert client.get(resolved, headers=auth_headers).get_json()["key"] == key


def test_keys_are_case_sensitive(save, get):
    save("Key", "upper")
    save("key", "lower")
    assert get("Key").get_json()["value"] == "upper"
    assert get("key").get_json()["value"] == "lower"
    assert get("KEY").status_code == 404


def test_a_percent_encoded_slash_and_a_slash_name_the_same_key(save, get, client, auth_headers):
    save("a/b", 1)
    assert client.get("/get/a%2Fb", headers=auth_headers).get_json()["key"] == "a/b"
    assert get("a/b").get_json()["key"] == "a/b"


def test_get_of_a_missing_key_is_404_key_not_found(get):
    response = get("nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "KEY_NOT_FOUND"


def test_get_after_delete_is_404(save, get, delete):
    save("k", 1)
    assert get("k").status_code == 200
    response = delete("k")
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers  # no content, so no type
    assert get("k").status_code == 404


def test_delete_of_a_missing_key_is_404(delete):
    response = delete("nothing-here")
    assert response.status_code == 404
    assert response.get_json()["code"] == "KEY_NOT_FOUND"


def test_a_key_created_again_after_delete_starts_at_version_1(save, delete):
    save("k", 1)
    save("k", 2)
    delete("k")
    response = save("k", 3)
    assert response.status_code == 201
    assert response.get_json()["version"] == 1


def test_get_with_the_current_etag_is_304_without_a_body(save, get):
    save("k", 1)
    response = get("k", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == '"1"'


@pytest.mark.parametrize("if_none_match", ['W/"2"', '"7", "2"', "*"])
def test_get_if_none_match_uses_weak_comparison_lists_and_star(save, get, if_none_match):
    save("k", 1)
    save("k", 2)
    assert get("k", headers={"If-None-Match": if_none_match}).status_code == 304


def test_get_with_an_old_etag_is_200_with_the_new_value(save, get):
    save("k", "old")
    save("k", "new")
    response = get("k", headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.get_json()["value"] == "new"
    assert response.headers["ETag"] == '"2"'


def test_get_with_if_none_match_on_a_missing_key_is_404(get):
    assert get("k", headers={"If-None-Match": "*"}).status_code == 404


def test_get_is_not_stored_by_shared_caches(save, get):
    save("k", 1)
    assert get("k").headers["Cache-Control"] == "private, no-cache"


def test_head_answers_like_get_without_a_body(save, client, auth_headers):
    save("k", 1)
    response = client.head("/get/k", headers=auth_headers)
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert response.data == b""


# Conditional writes


def test_save_if_match_with_the_current_version_writes(save):
    save("k", 1)
    response = save("k", 2, headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.get_json()["version"] == 2


def test_save_if_match_with_another_version_is_412_with_the_current_version(save, get):
    save("k", "first")
    save("k", "second")
    response = save("k", "lost?", headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "VERSION_MISMATCH"
    assert body["current_version"] == 2
    assert get("k").get_json()["value"] == "second"


def test_save_if_match_on_a_missing_key_is_412_with_no_current_version(save, get):
    response = save("k", 1, headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.get_json()["code"] == "VERSION_MISMATCH"
    assert response.get_json()["current_version"] is None
    assert get("k").status_code == 404


@pytest.mark.parametrize("if_match", ['"9", "1"', '"1"', '"9" ,"1",', ' "1" '])
def test_save_if_match_accepts_a_list(save, if_match):
    save("k", 1)
    assert save("k", 2, headers={"If-Match": if_match}).status_code == 200


@pytest.fixture
def at_the_highest_version(app, save):
    save("k", "first")
    with app.app_context():
        db.session.execute(sa.update(Entry).values(version=MAX_VERSION))
        db.session.commit()
        cache.clear()


@pytest.mark.parametrize("headers", [{}, {"If-Match": f'"{MAX_VERSION}"'}, {"If-Match": "*"}])
def test_a_key_at_the_highest_version_is_409_and_keeps_its_value(
    at_the_highest_version, save, get, headers
):
    # PostgreSQL's 32-bit column overflowed (a 500); SQLite went past it, to a version that
    # no If-Match and no import could name again.
    response = save("k", "second", headers=headers)
    assert response.status_code == 409
    problem = response.get_json()
    assert (problem["code"], problem["current_version"]) == ("VERSION_EXHAUSTED", MAX_VERSION)
    entry = get("k").get_json()
    assert (entry["value"], entry["version"]) == ("first", MAX_VERSION)


def test_a_key_at_the_highest_version_starts_again_once_deleted(
    at_the_highest_version, save, client, auth_headers
):
    assert save("k", 1, headers={"If-Match": '"1"'}).status_code == 412  # not that version
    assert client.delete("/delete/k", headers=auth_headers).status_code == 204
    assert save("k", "again").get_json()["version"] == 1


# Strong comparison compares the tags as strings: "0001" is not "1", even as a number it is.
@pytest.mark.parametrize(
    "if_match",
    ['W/"1"', '"0001"', '"01"', '"one"', '"01x"', '"+1"', '""', '"2147483648"', '"9999999999"'],
)
def test_save_if_match_with_a_weak_or_odd_tag_never_matches(save, get, if_match):
    save("k", 1)
    response = save("k", 2, headers={"If-Match": if_match})
    assert response.status_code == 412
    assert response.get_json()["code"] == "VERSION_MISMATCH"
    assert response.get_json()["current_version"] == 1
    assert get("k").get_json()["value"] == 1


# Not entity-tags: read as matching nothing, "1" would be 412 at version 1, and a client
# retrying with the version it was told would never succeed.
@pytest.mark.parametrize(
    # The empty header and a lone comma name no entity-tag: they were 412, as if one were named.
    "if_match",
    ["1", '"1", 2', 'w/"1"', '" 1"', '"1', '"1", *', "**", "", ",", " , "],
)
def test_save_with_a_malformed_if_match_is_400_and_writes_nothing(save, get, if_match):
    save("k", 1)
    response = save("k", 2, headers={"If-Match": if_match})
    assert response.status_code == 400
    assert response.get_json()["code"] == "INVALID_PRECONDITION"
    assert get("k").get_json()["value"] == 1


def test_save_if_match_star_updates_an_existing_key_only(save):
    assert save("k", 1, headers={"If-Match": "*"}).status_code == 412
    save("k", 1)
    assert save("k", 2, headers={"If-Match": "*"}).status_code == 200


def test_save_if_none_match_star_creates_a_missing_key(save):
    response = save("k", 1, headers={"If-None-Match": "*"})
    assert response.status_code == 201
    assert response.get_json()["version"] == 1


def test_save_if_none_match_star_on_an_existing_key_is_412_already_exists(save, get):
    save("k", "first")
    response = save("k", "second", headers={"If-None-Match": "*"})
    assert response.status_code == 412
    assert response.get_json()["code"] == "ALREADY_EXISTS"
    assert response.get_json()["current_version"] == 1
    assert get("k").get_json()["value"] == "first"


def test_save_with_if_none_match_other_than_star_is_400(save, get):
    save("k", 1)
    response = save("k", 2, headers={"If-None-Match": '"1"'})
    assert response.status_code == 400
    assert response.get_json()["code"] == "INVALID_PRECONDITION"
    assert get("k").get_json()["value"] == 1


@pytest.mark.parametrize(
    ("existing", "if_match", "code"),
    [
        (False, '"1"', "VERSION_MISMATCH"),
        (True, '"2"', "VERSION_MISMATCH"),
        (True, '"1"', "ALREADY_EXISTS"),
        (True, "*", "ALREADY_EXISTS"),
    ],
)
def test_save_with_if_match_and_if_none_match_star_never_writes(
    save, get, existing, if_match, code
):
    if existing:
        save("k", "kept")
    response = save("k", "new", headers={"If-Match": if_match, "If-None-Match": "*"})
    assert response.status_code == 412
    assert response.get_json()["code"] == code
    assert get("k").status_code == (200 if existing else 404)
    if existing:
        assert get("k").get_json()["value"] == "kept"


def test_delete_if_match_with_the_current_version_deletes(save, get, delete):
    save("k", 1)
    assert delete("k", headers={"If-Match": '"1"'}).status_code == 204
    assert get("k").status_code == 404


def test_delete_if_match_with_another_version_is_412_and_keeps_the_key(save, get, delete):
    save("k", 1)
    save("k", 2)
    response = delete("k", headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.get_json()["code"] == "VERSION_MISMATCH"
    assert response.get_json()["current_version"] == 2
    assert get("k").status_code == 200


@pytest.mark.parametrize("if_match", ['"02"', 'W/"2"'])
def test_delete_if_match_compares_tags_exactly(save, get, delete, if_match):
    save("k", 1)
    save("k", 2)
    response = delete("k", headers={"If-Match": if_match})
    assert response.status_code == 412
    assert response.get_json()["current_version"] == 2
    assert get("k").status_code == 200


def test_delete_with_an_unquoted_if_match_is_400_and_keeps_the_key(save, get, delete):
    save("k", 1)
    response = delete("k", headers={"If-Match": "1"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "INVALID_PRECONDITION"
    assert get("k").status_code == 200


def test_delete_if_match_of_a_missing_key_is_404(delete):
    assert delete("k", headers={"If-Match": '"1"'}).status_code == 404


def test_delete_with_if_none_match_is_400(save, get, delete):
    save("k", 1)
    assert delete("k", headers={"If-None-Match": "*"}).status_code == 400
    assert get("k").status_code == 200


# Limits and validation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 1}, "key"),
        ({"key": "k"}, "value"),
        ({"key": "", "value": 1}, "key"),
        ({"key": "k" * 257, "value": 1}, "key"),
        ({"key": "tab\there", "value": 1}, "key"),
        ({"key": "new\nline", "value": 1}, "key"),
        ({"key": "nul\u0000", "value": 1}, "key"),
        ({"key": "del\u007f", "value": 1}, "key"),
        ({"key": "c1\u0085", "value": 1}, "key"),
        ({"key": 12, "value": 1}, "key"),
        ({"key": None, "value": 1}, "key"),
        ({"key": "k", "value": "nul\u0000"}, "value"),
        ({"key": "k", "value": {"nul\u0000": 1}}, "value"),
        ({"key": "k", "value": 1, "ttl": 5}, "ttl"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(save, client, auth_headers, body, field):
    response = client.post("/save", json=body, headers=auth_headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "VALIDATION_ERROR"
    assert field in problem["errors"]["json"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422(client, auth_headers, number):
    response = client.post(
        "/save",
        data='{"key": "k", "value": [' + number + "]}",
        content_type="application/json",
        headers=auth_headers,
    )
    assert response.status_code == 422
    assert "value" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            '{"key": "k", "value": "\\ud800"}',
            "value",
            "Strings cannot contain \\u0000 or unpaired surrogates.",
        ),
        (
            '{"key": "k\\ud800", "value": 1}',
            "key",
            "A key cannot contain unpaired surrogates: it is UTF-8 text.",
        ),
    ],
)
def test_unpaired_surrogates_are_422(client, auth_headers, body, field, message):
    # Only JSON's escapes can send them: they are not UTF-8 text.
    response = client.post(
        "/save", data=body, content_type="application/json", headers=auth_headers
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"][field] == [message]


@pytest.mark.parametrize("innermost", [1, "text", None, [], {}])
def test_values_nested_up_to_the_limit_are_stored(save, get, innermost):
    # 100 arrays around a number were refused: the number counted as a level of its own.
    value = innermost
    for _ in range(MAX_VALUE_DEPTH - isinstance(innermost, (list, dict))):
        value = [value]
    assert save("deep", value).status_code == 201
    assert get("deep").get_json()["value"] == value


@pytest.mark.parametrize("innermost", [1, {}])
def test_values_nested_deeper_than_the_limit_are_422(save, innermost):
    value: object = innermost
    for _ in range(MAX_VALUE_DEPTH + 1 - isinstance(innermost, dict)):
        value = {"a": value}
    response = save("deep", value)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["value"] == [
        f"Values nest at most {MAX_VALUE_DEPTH} arrays or objects deep."
    ]


def test_a_body_nested_too_deep_to_parse_is_400_malformed(client, auth_headers):
    body = '{"key": "k", "value": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/save", data=body, content_type="application/json", headers=auth_headers
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "MALFORMED_JSON"
    assert "too deeply" in response.get_json()["detail"]


def test_a_value_with_an_integer_too_long_to_read_is_400_malformed(client, auth_headers):
    body = '{"key": "k", "value": 1' + "0" * 5000 + "}"
    response = client.post(
        "/save", data=body, content_type="application/json", headers=auth_headers
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "MALFORMED_JSON"
    assert "4300 digits" in response.get_json()["detail"]


def test_malformed_json_is_400(client, auth_headers):
    response = client.post(
        "/save", data='{"key": "k",', content_type="application/json", headers=auth_headers
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "MALFORMED_JSON"


def test_a_body_that_is_not_json_is_415(client, auth_headers):
    response = client.post("/save", data="key=k&value=1", headers=auth_headers)
    assert response.status_code == 415


def test_a_value_of_exactly_the_limit_is_stored_and_one_byte_more_is_413(make_app, auth_headers):
    client = make_app(STORE_MAX_VALUE_BYTES=100).test_client()
    # A JSON string of n characters serialises to n + 2 bytes (its quotes); é is 2 bytes.
    at_limit = "é" * 49
    response = client.post("/save", json={"key": "k", "value": at_limit}, headers=auth_headers)
    assert response.status_code == 201
    too_big = "é" * 49 + "x"
    response = client.post("/save", json={"key": "k", "value": too_big}, headers=auth_headers)
    assert response.status_code == 413
    problem = response.get_json()
    assert problem["code"] == "VALUE_TOO_LARGE"
    assert problem["max_bytes"] == 100
    assert client.get("/get/k", headers=auth_headers).get_json()["value"] == at_limit


def test_the_default_value_limit_is_512_kib(save):
    overhead = len('""')
    assert save("k", "x" * (512 * 1024 - overhead)).status_code == 201
    assert save("k", "x" * (512 * 1024 - overhead + 1)).status_code == 413


@pytest.mark.parametrize("path", ["/get/", "/delete/"])
def test_a_key_longer_than_256_characters_in_the_path_is_422(client, auth_headers, path):
    request = client.get if path == "/get/" else client.delete
    response = request(path + "k" * 257, headers=auth_headers)
    assert response.status_code == 422
    assert "key" in response.get_json()["errors"]["path"]


@pytest.mark.parametrize("path", ["/get/", "/delete/"])
@pytest.mark.parametrize(
    "encoded", ["a%01b", "a%09b", "a%00b", "a%0Ab", "a%0Db", "%0A", "a%0A", "a%7F"]
)
def test_a_control_character_in_the_path_is_422(client, auth_headers, path, encoded):
    response = client.open(
        path + encoded, method="GET" if path == "/get/" else "DELETE", headers=auth_headers
    )
    assert response.status_code == 422
    assert response.get_json()["errors"]["path"]["key"] == [
        "A key cannot contain control characters."
    ]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("encoded", ["%FF", "%ff", "%C0%AF", "a%E9b", "a%e9b", "%ED%A0%80"])
def test_a_path_that_is_not_percent_encoded_utf8_is_422_and_touches_no_key(
    save, get, client, auth_headers, method, encoded
):
    # Werkzeug decodes invalid UTF-8 as U+FFFD: without the check these name existing keys.
    keys = ["\ufffd", "\ufffd\ufffd", "a\ufffdb", "\ufffd\ufffd\ufffd"]
    for key in keys:
        save(key, "precious")
    path = {"GET": "/get/", "DELETE": "/delete/"}[method] + encoded
    response = client.open(path, method=method, headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert response.get_json()["errors"]["path"]["key"] == [
        "The key in the path is not UTF-8 once percent-decoded."
    ]
    for key in keys:
        assert get(key).get_json()["value"] == "precious"


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("%41b%7e", "Ab~"),
        ("a%20b", "a b"),
        ("caf%C3%A9", "caf\u00e9"),
        ("caf%c3%a9", "caf\u00e9"),
        ("%E2%82%AC", "\u20ac"),
        ("100%25", "100%"),
    ],
)
def test_a_key_percent_encoded_as_utf8_is_read(save, client, auth_headers, encoded, key):
    # ASCII bytes, sent as they are or percent-encoded, and UTF-8 in either case of hex digits.
    save(key, "found")
    response = client.get("/get/" + encoded, headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["key"] == key
    assert response.get_json()["value"] == "found"


def test_path_info_bytes_that_are_not_utf8_are_422(save, get, client, auth_headers):
    # As gunicorn passes the path (PEP 3333: one character per byte); the test client's own
    # PATH_INFO has already replaced invalid bytes with U+FFFD.
    save("\ufffd", "precious")
    response = client.delete(
        "/delete/x", headers=auth_headers, environ_overrides={"PATH_INFO": "/delete/\xff"}
    )
    assert response.status_code == 422
    assert get("\ufffd").status_code == 200


def test_a_key_holding_u_fffd_is_reached_by_its_utf8_encoding(save, get, delete):
    save("\ufffd", "replacement character")
    assert get("\ufffd").get_json()["key"] == "\ufffd"  # sent as %EF%BF%BD
    assert delete("\ufffd").status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/save"), ("get", "/get/k"), ("delete", "/delete/k"), ("get", "/keys")],
)
def test_every_store_route_needs_a_key(client, method, path):
    response = getattr(client, method)(path, json={"key": "k", "value": 1})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


# Namespaces


def test_clients_cannot_see_each_others_keys(save, get, delete, client, other_auth_headers):
    save("shared-name", "mine")
    assert get("shared-name", auth=other_auth_headers).status_code == 404
    assert delete("shared-name", auth=other_auth_headers).status_code == 404
    listing = client.get("/keys", headers=other_auth_headers).get_json()
    assert listing["items"] == []
    assert listing["total"] == 0
    assert get("shared-name").get_json()["value"] == "mine"


def test_two_clients_hold_the_same_key_with_different_values(save, get, other_auth_headers):
    assert save("k", "mine").status_code == 201
    assert save("k", "theirs", auth=other_auth_headers).status_code == 201
    assert save("k", "mine again").get_json()["version"] == 2
    assert get("k").get_json()["value"] == "mine again"
    assert get("k", auth=other_auth_headers).get_json() | {"created_at": 0, "updated_at": 0} == {
        "key": "k",
        "value": "theirs",
        "version": 1,
        "created_at": 0,
        "updated_at": 0,
    }


def test_a_client_cannot_overwrite_or_delete_another_clients_key(
    save, get, delete, other_auth_headers
):
    save("k", "mine")
    response = save("k", "theirs", auth=other_auth_headers, headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.get_json()["current_version"] is None
    assert delete("k", auth=other_auth_headers, headers={"If-Match": '"1"'}).status_code == 404
    assert get("k").get_json() | {"created_at": 0, "updated_at": 0} == {
        "key": "k",
        "value": "mine",
        "version": 1,
        "created_at": 0,
        "updated_at": 0,
    }


# Listing


def test_keys_lists_the_callers_keys_in_code_point_order(save, client, auth_headers):
    for key in ["b", "a/2", "B", "a/10", "é", "a", "🦄", "a b"]:
        save(key, 1)
    save("b", 2)
    body = client.get("/keys", headers=auth_headers).get_json()
    assert [item["key"] for item in body["items"]] == sorted(
        ["b", "a/2", "B", "a/10", "é", "a", "🦄", "a b"]
    )
    assert body["total"] == 8
    assert body["pages"] == 1
    assert {item["key"]: item["version"] for item in body["items"]}["b"] == 2
    assert set(body["items"][0]) == {"key", "version", "updated_at"}


def test_keys_filters_by_a_case_sensitive_prefix(save, client, auth_headers):
    for key in ["user/1", "user/2", "User/3", "users", "user", "usex", "us%er/4", "us_er/5"]:
        save(key, 1)

    def keys(prefix):
        response = client.get("/keys", query_string={"prefix": prefix}, headers=auth_headers)
        return [item["key"] for item in response.get_json()["items"]]

    assert keys("user/") == ["user/1", "user/2"]
    assert keys("user") == ["user", "user/1", "user/2", "users"]
    assert keys("User") == ["User/3"]
    # LIKE wildcards are plain characters in a prefix.
    assert keys("us%") == ["us%er/4"]
    assert keys("us_") == ["us_er/5"]
    assert keys("nobody") == []


def test_keys_prefix_ending_with_the_highest_code_point_still_matches(save, client, auth_headers):
    save("a\U0010ffff", 1)
    save("a\U0010ffffz", 1)
    save("b", 1)
    response = client.get("/keys", query_string={"prefix": "a\U0010ffff"}, headers=auth_headers)
    assert [item["key"] for item in response.get_json()["items"]] == ["a\U0010ffff", "a\U0010ffffz"]


def test_keys_is_paginated_with_the_total(save, client, auth_headers):
    for number in range(5):
        save(f"k{number}", number)
    page = client.get("/keys?page=2&page_size=2", headers=auth_headers).get_json()
    assert [item["key"] for item in page["items"]] == ["k2", "k3"]
    assert (page["total"], page["pages"], page["page"], page["page_size"]) == (5, 3, 2, 2)
    last = client.get("/keys?page=3&page_size=2", headers=auth_headers).get_json()
    assert [item["key"] for item in last["items"]] == ["k4"]
    beyond = client.get("/keys?page=4&page_size=2", headers=auth_headers).get_json()
    assert beyond["items"] == []
    assert beyond["total"] == 5


def test_keys_with_a_page_number_far_past_the_end_is_an_empty_page(save, client, auth_headers):
    save("k", 1)
    response = client.get("/keys?page=461168601842737711&page_size=1000", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["items"] == []
    assert response.get_json()["total"] == 1


@pytest.mark.parametrize(
    "query", ["page=0", "page_size=0", "page_size=1001", "page=x", "prefix=" + "k" * 257]
)
def test_keys_rejects_bad_paging_and_prefixes_with_422(client, auth_headers, query):
    assert client.get("/keys?" + query, headers=auth_headers).status_code == 422


@pytest.mark.parametrize("encoded", ["%FF", "a%E9", "%ED%A0%80"])
def test_a_prefix_that_is_not_percent_encoded_utf8_is_422(save, client, auth_headers, encoded):
    # Werkzeug keeps such bytes percent-encoded: %FF would list the keys starting with "%FF".
    save("\ufffd-stored", 1)
    save(encoded + "-literal", 1)
    response = client.get("/keys?prefix=" + encoded, headers=auth_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]["prefix"] == [
        "The prefix is not UTF-8 once percent-decoded."
    ]


def test_a_prefix_in_percent_encoded_utf8_lists_its_keys(save, client, auth_headers):
    save("caf\u00e9/1", 1)
    response = client.get("/keys?prefix=caf%C3%A9", headers=auth_headers)
    assert [item["key"] for item in response.get_json()["items"]] == ["caf\u00e9/1"]


@pytest.mark.parametrize(
    ("send", "location", "message"),
    [
        (
            lambda c, h: c.post("/save", json={"key": "", "value": 1}, headers=h),
            "json",
            "A key is 1 to 256 characters long.",
        ),
        (
            lambda c, h: c.post("/save", json={"key": "k" * 257, "value": 1}, headers=h),
            "json",
            "A key is 1 to 256 characters long.",
        ),
        (
            lambda c, h: c.get("/keys?prefix=" + "k" * 257, headers=h),
            "query",
            "A prefix is at most 256 characters long.",
        ),
        (
            lambda c, h: c.get("/keys?prefix=a%01", headers=h),
            "query",
            "A prefix cannot contain control characters.",
        ),
    ],
)
def test_a_wrong_key_or_prefix_is_said_once_in_its_own_words(
    client, auth_headers, send, location, message
):
    errors = send(client, auth_headers).get_json()["errors"][location]
    assert list(errors.values()) == [[message]]


# The contract, as documented


def test_the_openapi_document_describes_every_store_error(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert set(paths["/save"]["post"]["responses"]) >= {
        "200", "201", "400", "401", "412", "413", "415", "422",
    }  # fmt: skip
    assert set(paths["/get/{key}"]["get"]["responses"]) >= {"200", "304", "401", "404", "422"}
    assert set(paths["/delete/{key}"]["delete"]["responses"]) >= {
        "204", "400", "401", "404", "412", "422",
    }  # fmt: skip
    assert set(paths["/keys"]["get"]["responses"]) >= {"200", "401", "422"}
    conflict = paths["/save"]["post"]["responses"]["412"]["content"]
    assert "application/problem+json" in conflict
    assert "ETag" in paths["/get/{key}"]["get"]["responses"]["200"]["headers"]


@pytest.mark.parametrize("if_match", ['"2147483648"', '"9999999999"'])
def test_delete_if_match_beyond_any_version_is_412_not_an_error(
    save, client, auth_headers, if_match
):
    save("k", 1)
    response = client.delete("/delete/k", headers={**auth_headers, "If-Match": if_match})
    assert response.status_code == 412
    assert response.get_json()["current_version"] == 1
