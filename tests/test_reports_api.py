"""POST /api/v1/reports and GET /api/v1/reports through the real app on a real database."""
from __future__ import annotations

import json
from contextlib import closing

import pytest
from enginetools import contents

from portal import create_app
from portal.data import statements
from tests.conftest import DEMO_NOW


def make_app(target):
    # Behind one trusted proxy, so each test reporter can come from its own network.
    return create_app({"DATABASE": str(target), "NOW": DEMO_NOW, "TESTING": True, "TRUSTED_PROXY_HOPS": 1})


@pytest.fixture
def app(db_target):
    """The app on the test's own copy of the demo database, on SQLite and on PostgreSQL."""
    return make_app(db_target)


def post(app, n, body, *, net=None):
    """Post from reporter ``n`` (its own client, cookie jar and /24 unless ``net`` pins one)."""
    client = app.test_client()
    address = f"10.{n}.0.5" if net is None else f"10.{net}.0.{n}"
    return client.post("/api/v1/reports", json=body, headers={"X-Forwarded-For": address})


def test_a_report_is_counted_and_shows_the_count_and_usual(app):
    answer = post(app, 1, {"service": "internet", "town": "pechory"})
    assert answer.status_code == 202
    assert answer.json["status"] == "counted"
    assert (answer.json["last_hour"], answer.json["usual"]) == (1, 0.0)
    counts = app.test_client().get("/api/v1/reports?town=pechory").json
    assert counts["town"] == "pechory"
    assert {"service": "internet", "last_hour": 1, "usual": 0.0} in counts["services"]


def test_the_same_reporter_counts_once(app):
    client = app.test_client()
    first = client.post("/api/v1/reports", json={"service": "tv", "town": "pechory"},
                        headers={"X-Forwarded-For": "10.9.9.9"})
    again = client.post("/api/v1/reports", json={"service": "tv", "town": "pechory"},
                        headers={"X-Forwarded-For": "10.9.9.9"})
    assert first.json["status"] == "counted" and again.status_code == 202
    assert again.json["status"] == "already_counted" and again.json["last_hour"] == 1


@pytest.mark.parametrize("body, field", [
    ({"service": "radio", "town": "pechory"}, "service"),
    ({"service": "internet", "town": "atlantis"}, "town"),
    ({"service": "internet", "lat": "north", "lon": 28}, "lat"),
    ({"service": "internet"}, "town"),
])
def test_bad_fields_get_400_naming_the_field(app, body, field):
    answer = post(app, 1, body)
    assert answer.status_code == 400 and answer.json["field"] == field and field in answer.json["error"]


def test_a_flood_from_one_client_gets_429_with_retry_after(app):
    client = app.test_client()
    codes = [client.post("/api/v1/reports", json={"service": "internet", "town": "pechory"},
                         headers={"X-Forwarded-For": "10.7.7.7"}).status_code for _ in range(61)]
    assert codes[:60] == [202] * 60 and codes[60] == 429
    last = client.post("/api/v1/reports", json={"service": "internet", "town": "pechory"},
                       headers={"X-Forwarded-For": "10.7.7.7"})
    assert int(last.headers["Retry-After"]) > 0
    assert client.get("/api/v1/reports?town=pechory").json["services"][0]["last_hour"] == 1


def test_forty_in_pskov_see_the_count_grow_and_make_one_draft(app, db_target):
    before = app.test_client().get("/api/v1/incidents?town=pskov&status=all").json["incidents"]
    seen = [post(app, n, {"service": "internet", "town": "pskov"}).json["last_hour"] for n in range(40)]
    assert seen == list(range(1, 41))
    with closing(statements.connect(db_target)) as conn:
        rows = [tuple(r) for r in conn.execute("SELECT town, service, reporters, state FROM report_drafts")]
    assert rows == [("pskov", "internet", 40, "draft")]
    # A draft is not an incident: the public sees nothing yet.
    assert app.test_client().get("/api/v1/incidents?town=pskov&status=all").json["incidents"] == before


def test_a_point_report_counts_for_its_town_and_keeps_no_point_or_address(app, db_target):
    town = app.test_client().get("/api/v1/towns/pskov").json
    lat, lon = town["lat"] + 0.000123, town["lon"] + 0.000456
    before = contents(db_target)
    answer = post(app, 3, {"service": "phone", "lat": lat, "lon": lon})
    assert answer.status_code == 202 and answer.json["town"] == "pskov"
    counts = app.test_client().get("/api/v1/reports?town=pskov")
    public = json.dumps(answer.json) + counts.get_data(as_text=True)
    dump = "\n".join(repr(row) for name, rows in contents(db_target).items() for row in rows
                     if row not in before[name])
    assert dump  # the report is stored: its new rows are what is searched
    for text in (public, dump):
        for value in (f"{lat:.5f}", f"{lon:.5f}", "10.3.0.5", "10.3.0."):
            assert value not in text


def test_map_layer_counts_cells_from_three_reporters_and_shows_squares_not_points(app):
    town = app.test_client().get("/api/v1/towns/pskov").json
    lat, lon = town["lat"] + 0.000211, town["lon"] + 0.000333
    for n in range(2):
        post(app, 20 + n, {"service": "tv", "lat": lat, "lon": lon})
    assert app.test_client().get("/api/v1/reports.geojson").json["features"] == []
    post(app, 22, {"service": "tv", "lat": lat, "lon": lon})
    layer = app.test_client().get("/api/v1/reports.geojson?service=tv")
    (feature,) = layer.json["features"]
    assert feature["properties"] == {"service": "tv", "count": 3}
    ring = feature["geometry"]["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    assert min(xs) <= lon <= max(xs) and min(ys) <= lat <= max(ys)
    assert 80 < (max(ys) - min(ys)) * 111_320 < 120
    assert f"{lat:.5f}" not in layer.get_data(as_text=True)


def test_reports_keep_the_write_ahead_log_bounded(db_path):
    # About SQLite's write-ahead log file: SQLite only.
    app = make_app(db_path)
    # Each report commits while the request has read the database: unless the request lets go
    # of its read first, the log can never start over and grows by every report (~34 KB each;
    # 700 reports made it 24 MB before), each commit paying for a checkpoint as well.
    for n in range(700):
        client = app.test_client()
        answer = client.post("/api/v1/reports", json={"service": "internet", "town": "pechory"},
                             headers={"X-Forwarded-For": f"10.{n // 250}.{n % 250}.5"})
        assert answer.status_code == 202
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.stat().st_size < 6 * 1024 * 1024  # SQLite checkpoints at 1,000 pages (4 MB)
