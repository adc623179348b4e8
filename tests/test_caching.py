"""Validators from the data revision, 304s, Cache-Control and compression on public GETs."""
from __future__ import annotations

import gzip
from datetime import timedelta

from portal import create_app
from portal.incidents import writes as incidents
from tests.conftest import DEMO_NOW

PUBLIC_GETS = ["/", "/towns", "/towns/pechory", "/incidents", "/api/v1/towns", "/api/v1/summary",
               "/api/v1/check?lat=57.8&lon=28.33", "/api/v1/status?town=pechory", "/feeds/incidents.atom"]


def test_every_public_get_has_validators_and_cache_control(client):
    for path in PUBLIC_GETS:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["ETag"].startswith('W/"'), path
        assert r.headers["Last-Modified"], path
        assert r.headers["Cache-Control"] == ("public, max-age=30, stale-while-revalidate=300, "
                                              "stale-if-error=86400"), path


def test_pages_vary_by_language_and_the_etag_names_it(client):
    en = client.get("/towns/pechory", headers={"Accept-Language": "en"})
    ru = client.get("/towns/pechory", headers={"Accept-Language": "ru"})
    assert "Accept-Language" in en.headers["Vary"] and "Cookie" in en.headers["Vary"]
    assert en.headers["ETag"] != ru.headers["ETag"]


def test_if_none_match_gets_304_until_the_data_changes(app, client):
    first = client.get("/api/v1/status?town=pechory")
    again = client.get("/api/v1/status?town=pechory", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    incidents.open_incident(app.config["DATABASE"], title="Cut", services=["internet"], towns=["pechory"],
                            author="test", now=DEMO_NOW, at=DEMO_NOW - timedelta(minutes=1))
    changed = client.get("/api/v1/status?town=pechory", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.json["down"] is True
    assert changed.headers["ETag"] != first.headers["ETag"]


def test_if_modified_since_gets_304(client):
    first = client.get("/towns")
    again = client.get("/towns", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304


def test_the_etag_changes_with_the_minute(db_target):
    def etag(now):
        app = create_app({"DATABASE": str(db_target), "NOW": now, "TESTING": True})
        return app.test_client().get("/api/v1/summary").headers["ETag"]

    assert etag(DEMO_NOW) == etag(DEMO_NOW + timedelta(seconds=20))
    assert etag(DEMO_NOW) != etag(DEMO_NOW + timedelta(minutes=1))


def test_errors_are_not_cached_long(client):
    missing = client.get("/towns/atlantis")
    assert missing.status_code == 404
    assert missing.headers["Cache-Control"] == "public, max-age=10"
    assert "ETag" not in missing.headers
    bad = client.get("/api/v1/check?lat=99&lon=0")
    assert bad.status_code == 400 and bad.headers["Cache-Control"] == "public, max-age=10"


def test_responses_are_gzipped_when_accepted(client):
    plain = client.get("/api/v1/towns")
    packed = client.get("/api/v1/towns", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data) / 3


def test_a_body_too_small_to_compress_does_not_vary_by_encoding(client):
    # Under 1 KB (one TCP segment either way) the answer goes out as it is to every client: a
    # cache may share it. A short town search is such an answer.
    for url in ("/api/v1/towns?q=Nowhere-at-all", "/api/v1/towns?q=o"):
        small = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert small.status_code == 200 and len(small.data) < 1024
        assert "Content-Encoding" not in small.headers
        assert "Accept-Encoding" not in small.headers.get("Vary", "")
        assert small.headers["ETag"] and small.headers["Cache-Control"].startswith("public")
    assert len(small.data) > 500  # more than the threshold before it was raised


def test_a_chosen_language_is_not_cached_publicly(client):
    r = client.get("/towns?lang=en")
    assert "Set-Cookie" in r.headers
    assert r.headers["Cache-Control"].startswith("private")


def test_api_errors_vary_by_language_because_their_messages_are_translated(client):
    ru = client.get("/api/v1/check?lat=abc&lon=1", headers={"Accept-Language": "ru"})
    en = client.get("/api/v1/check?lat=abc&lon=1", headers={"Accept-Language": "en"})
    assert ru.get_json()["error"] != en.get_json()["error"]
    assert "Accept-Language" in ru.headers["Vary"]
    assert "Accept-Language" not in client.get("/api/v1/towns?q=Pskov").headers.get("Vary", "")


def test_last_modified_follows_the_latest_write(app, client):
    from email.utils import parsedate_to_datetime

    from portal.data import db

    incidents.open_incident(app.config["DATABASE"], title="Cut", services=["internet"], towns=["pechory"],
                            author="test", now=DEMO_NOW, at=DEMO_NOW - timedelta(minutes=1))
    written = db.utcnow().replace(microsecond=0)
    r = client.get("/api/v1/summary")
    modified = parsedate_to_datetime(r.headers["Last-Modified"])
    assert abs((modified - written).total_seconds()) <= 2
    # A copy from before the write is stale; one from after it is current.
    older = (written - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert client.get("/api/v1/summary", headers={"If-Modified-Since": older}).status_code == 200
    current = client.get("/api/v1/summary", headers={"If-Modified-Since": r.headers["Last-Modified"]})
    assert current.status_code == 304


def test_json_answers_are_flasks_json(app):
    import json
    from datetime import date, datetime, timezone

    payload = {"b": [1, 2.5, None, True], "a": {"name_ru": "Печоры", "ё": "<script>"},
               "when": datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc), "day": date(2026, 3, 1)}
    with app.app_context():
        ours = app.json.response(payload)
        flasks = super(type(app.json), app.json).response(payload)
    assert ours.mimetype == "application/json"
    assert json.loads(ours.get_data()) == json.loads(flasks.get_data())
    assert list(json.loads(ours.get_data())) == ["a", "b", "day", "when"]  # keys sorted, as Flask does
    assert "Печоры".encode() in ours.get_data()
