"""Incident writes, what they affect, deadlines, maintenance windows, availability, the demo.

Every test that touches the database runs twice: on SQLite and on PostgreSQL (a private cluster).
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dbtools import database_with_towns, square_town
from enginetools import contents, engine_copy, reading
from shapely.geometry import Point, Polygon, box, shape

from portal import answers
from portal.config import DEFAULTS
from portal.data import db, layers
from portal.incidents import demo as demo_incidents
from portal.incidents import writes as incidents
from portal.incidents.reads import IncidentReads
from portal.incidents.writes import IncidentError
from tests.conftest import DEMO_NOW

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow
H = timedelta(hours=1)


# Alpha and Beta share the edge lon = 30.1; Gamma is far away.
TOWNS = [
    square_town("alpha", "Alpha", 30.0, 60.0),
    square_town("beta", "Beta", 30.1, 60.0),
    square_town("gamma", "Gamma", 31.0, 61.0),
]
BUILDING = box(30.04, 60.04, 30.06, 60.06)  # inside Alpha
ACROSS = box(30.08, 60.04, 30.12, 60.06)  # across the Alpha/Beta edge
OUTSIDE_WEST = box(29.9, 60.0, 30.0, 60.1)  # touches Alpha's west edge only


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """Build, once, a migrated database whose live towns are the hand-made squares."""
    return database_with_towns(tmp_path_factory.mktemp("incidents") / "incidents.sqlite", TOWNS)


@pytest.fixture
def db_path(engine, towns_template, tmp_path, request):
    """Give the test its own copy of the hand-made database on the engine under test (a path or a URL)."""
    return engine_copy(engine, towns_template, tmp_path, request)


def read(target):
    """Open the database as the web side does (closed when the block ends)."""
    return reading(target)


def reads(conn, deadlines=DEFAULTS["RESTORE_DEADLINE_HOURS"]):
    """Read the incidents of the connection's data with the live towns (and these deadlines)."""
    return IncidentReads.read(conn, deadline_hours=deadlines)


def open_(path, **kw):
    """Open an outage with test defaults."""
    args = {"title": "No internet", "services": ["internet"], "author": "ops", "now": NOW,
            "at": NOW - 3 * H}
    args.update(kw)
    return incidents.open_incident(path, **args)


def test_open_records_the_incident_its_geometry_and_an_audit_row(db_path):
    incident_id = open_(db_path, towns=["alpha"], eta=NOW + 2 * H, message="Looking into it", cause=None)
    with read(db_path) as conn:
        got = answers.incident_report(reads(conn), incident_id, NOW)
        audit = conn.execute("SELECT * FROM audit").fetchall()
    assert got["id"] == incident_id and got["url"] == f"/incidents/{incident_id}"
    assert (got["kind"], got["status"], got["services"], got["towns"]) == (
        "outage", "investigating", ["internet"], ["alpha"])
    assert got["started_at"] == "2026-03-10T06:00:00Z" and got["resolved_at"] is None
    assert got["eta"] == "2026-03-10T11:00:00Z" and got["duration_s"] == 3 * 3600
    assert [{k: u[k] for k in ("at", "status", "message")} for u in got["updates"]] == [
        {"at": "2026-03-10T06:00:00Z", "status": "investigating", "message": "Looking into it"}]
    assert shape(got["geometry"]).equals(TOWNS[0].geometry)
    assert got["affected_towns"] == ["alpha"]
    assert [(a["author"], a["action"], a["subject"]) for a in audit] == [
        ("ops", "incident.open", f"incident:{incident_id}")]
    assert json.loads(audit[0]["detail"])["towns"] == ["alpha"]


def test_geometry_is_the_union_of_areas_and_listed_towns(db_path):
    incident_id = open_(db_path, towns=["gamma"], area=BUILDING)
    with read(db_path) as conn:
        got = answers.incident_report(reads(conn), incident_id, NOW)
    assert shape(got["geometry"]).equals(TOWNS[2].geometry.union(BUILDING))
    assert got["affected_towns"] == ["alpha", "gamma"]


@pytest.mark.parametrize("lat, lon, affected", [
    (60.05, 30.05, True),    # inside the building
    (60.06, 30.05, True),    # on its border
    (60.04, 30.04, True),    # on its corner
    (60.07, 30.05, False),   # in Alpha, outside the building: Alpha is not listed
    (60.5, 30.5, False),     # nowhere
])
def test_point_is_affected_inside_or_on_the_border_of_an_area(db_path, lat, lon, affected):
    open_(db_path, area=BUILDING)
    with read(db_path) as conn:
        found = reads(conn).affecting_point(lat, lon, NOW)
    assert bool(found) is affected


@pytest.mark.parametrize("lat, lon, affected", [
    (60.05, 30.05, True),    # inside Alpha
    (60.05, 30.1, True),     # on the Alpha/Beta edge
    (60.05, 30.15, False),   # inside Beta only
    (59.95, 30.05, False),   # south of Alpha
])
def test_point_is_affected_inside_a_listed_town(db_path, lat, lon, affected):
    open_(db_path, towns=["alpha"])
    with read(db_path) as conn:
        assert bool(reads(conn).affecting_point(lat, lon, NOW)) is affected
        # The caller's town of the point counts as well, whatever its extent.
        assert reads(conn).affecting_point(0.0, 0.0, NOW, town_slug="alpha")


def test_a_town_is_affected_when_listed_or_overlapped_not_when_only_touched(db_path):
    listed = open_(db_path, title="Listed", towns=["gamma"])
    across = open_(db_path, title="Across", area=ACROSS)
    touching = open_(db_path, title="Touching", area=OUTSIDE_WEST)
    with read(db_path) as conn:
        ids = {slug: {r.id for r in reads(conn).affecting_town(slug, NOW)}
               for slug in ("alpha", "beta", "gamma")}
    assert ids == {"alpha": {across}, "beta": {across}, "gamma": {listed}}
    assert touching not in ids["alpha"]


def test_status_for_a_point_a_town_and_the_region(db_path):
    open_(db_path, towns=["alpha"], services=["tv"], kind="degraded")
    maint = incidents.schedule_maintenance(db_path, title="Upgrade", services=["phone"], towns=["beta"],
                                           start=NOW + H, end=NOW + 3 * H, author="ops", now=NOW)
    with read(db_path) as conn:
        alpha = answers.place_status(reads(conn), NOW, lat=60.05, lon=30.05)
        beta = answers.place_status(reads(conn), NOW, town="beta")
        beta_later = answers.place_status(reads(conn), NOW + 2 * H, town="beta")
        gamma = answers.place_status(reads(conn), NOW, town="gamma")
        region = answers.place_status(reads(conn), NOW)
    assert alpha["down"] and [i["kind"] for i in alpha["incidents"]] == ["degraded"]
    assert not beta["down"] and [m["id"] for m in beta["maintenance"]] == [maint]
    assert beta_later["down"] and beta_later["maintenance"][0]["status"] == "in_progress"
    assert gamma == {"down": False, "incidents": [], "maintenance": []}
    assert region["down"] and len(region["incidents"]) == 1 and len(region["maintenance"]) == 1


def test_summary_derives_each_service_from_the_active_incidents(db_path):
    open_(db_path, towns=["alpha", "beta"], services=["internet"])
    open_(db_path, area=BUILDING, services=["tv"])
    open_(db_path, towns=["gamma"], services=["phone"], kind="degraded")
    with read(db_path) as conn:
        got = answers.service_summary(reads(conn), NOW)
    assert {s: v["status"] for s, v in got["services"].items()} == {
        "internet": "major_outage", "tv": "partial_outage", "phone": "degraded_performance"}
    assert got["status"] == "major_outage" and len(got["incidents"]) == 3
    assert got["services"]["tv"]["towns"] == ["alpha"]


def test_lifecycle_keeps_the_timeline_and_eta_revisions(db_path):
    incident_id = open_(db_path, towns=["alpha"], eta=NOW + H)
    incidents.update_incident(db_path, incident_id, status="identified", message="Cable cut found",
                              at=NOW - 2 * H, eta=NOW + 4 * H, cause="Cable cut", author="ops", now=NOW)
    incidents.update_incident(db_path, incident_id, status="monitoring", message="Spliced",
                              at=NOW - H, author="ops", now=NOW)
    incidents.resolve_incident(db_path, incident_id, message="All good", at=NOW - H / 2, author="lead",
                               now=NOW)
    with read(db_path) as conn:
        got = answers.incident_report(reads(conn), incident_id, NOW)
        active = answers.incident_list(reads(conn), NOW)
        history = answers.incident_list(reads(conn), NOW, "resolved", town="alpha", service="internet")
        audit = [r["action"] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert [u["status"] for u in got["updates"]] == ["investigating", "identified", "monitoring", "resolved"]
    assert got["status"] == "resolved" and got["resolved_at"] == "2026-03-10T08:30:00Z"
    assert got["cause"] == "Cable cut" and got["eta"] is None
    assert got["duration_s"] == int(2.5 * 3600)
    assert got["eta_history"] == [{"at": "2026-03-10T06:00:00Z", "eta": "2026-03-10T10:00:00Z"},
                                  {"at": "2026-03-10T07:00:00Z", "eta": "2026-03-10T13:00:00Z"}]
    assert active == [] and [i["id"] for i in history] == [incident_id]
    assert audit == ["incident.open", "incident.update", "incident.update", "incident.resolve"]


def test_update_with_status_resolved_resolves(db_path):
    incident_id = open_(db_path, towns=["alpha"])
    incidents.update_incident(db_path, incident_id, status="resolved", message="Fixed", author="ops", now=NOW)
    with read(db_path) as conn:
        assert answers.incident_report(reads(conn), incident_id, NOW)["status"] == "resolved"


def test_deadline_clock_per_service(db_path):
    late = open_(db_path, towns=["alpha"], services=["internet", "phone"], at=NOW - 25 * H)
    early = open_(db_path, towns=["beta"], services=["tv"], at=NOW - 2 * H)
    done = open_(db_path, towns=["gamma"], services=["internet"], at=NOW - 30 * H)
    incidents.resolve_incident(db_path, done, message="Fixed", at=NOW - 10 * H, author="ops", now=NOW)
    with read(db_path) as conn:
        found = reads(conn)
        late, early, done = (answers.incident_report(found, i, NOW)["deadline"] for i in (late, early, done))
        custom = answers.incident_report(reads(conn, {"tv": 1}), 2, NOW)["deadline"]
    assert late["internet"] == {"hours": 24, "due_at": "2026-03-10T08:00:00Z", "missed": True,
                                "remaining_s": -3600}
    assert late["phone"]["missed"] is False and late["phone"]["remaining_s"] == 47 * 3600
    assert early["tv"]["missed"] is False and early["tv"]["remaining_s"] == 22 * 3600
    assert done["internet"]["missed"] is False and done["internet"]["remaining_s"] is None
    assert custom["tv"]["missed"] is True


def test_maintenance_status_follows_its_window(db_path):
    start, end = NOW + 2 * H, NOW + 6 * H
    mid = incidents.schedule_maintenance(db_path, title="Node upgrade", services=["internet", "tv"],
                                         towns=["alpha"], start=start, end=end, author="ops", now=NOW)
    seen = {}
    for label, now in (("before", NOW), ("during", NOW + 3 * H), ("after", NOW + 7 * H)):
        with read(db_path) as conn:
            seen[label] = (answers.incident_report(reads(conn), mid, now),
                           [i["id"] for i in answers.incident_list(reads(conn), now)],
                           answers.place_status(reads(conn), now, town="alpha")["down"],
                           answers.service_summary(reads(conn), now)["services"]["tv"]["status"])
    assert [seen[k][0]["status"] for k in seen] == ["scheduled", "in_progress", "completed"]
    assert [seen[k][1] for k in seen] == [[mid], [mid], []]
    assert [seen[k][2] for k in seen] == [False, True, False]
    assert [seen[k][3] for k in seen] == ["operational", "under_maintenance", "operational"]
    after = seen["after"][0]
    assert after["resolved_at"] == db.iso(end) and after["scheduled_start"] == db.iso(start)
    assert [u["status"] for u in after["updates"]] == ["scheduled", "in_progress", "completed"]
    assert after["deadline"] == {} and after["duration_s"] == 4 * 3600


def test_availability_on_a_hand_computed_case(db_path):
    # Two days before NOW (Moscow date 2026-03-08), a 12-hour outage from local midnight to noon.
    start = datetime(2026, 3, 8, 0, 0, tzinfo=MSK)
    outage = open_(db_path, towns=["alpha"], at=start)
    incidents.resolve_incident(db_path, outage, message="Back", at=start + 12 * H, author="ops", now=NOW)
    # An outage of one building and a degraded day mark days partial without counting as downtime.
    building = open_(db_path, area=BUILDING, at=datetime(2026, 3, 5, 10, 0, tzinfo=MSK))
    incidents.resolve_incident(db_path, building, message="Back", at=datetime(2026, 3, 5, 11, 0, tzinfo=MSK),
                               author="ops", now=NOW)
    with read(db_path) as conn:
        got = reads(conn).availability("alpha", "internet", NOW, tz="Europe/Moscow")
        tv = reads(conn).availability("alpha", "tv", NOW)
        gamma = reads(conn).availability("gamma", "internet", NOW)
        since = reads(conn).availability("alpha", "internet", NOW, days=5, since=NOW - 72 * H)
    days = {d["date"]: d for d in got["days"]}
    assert len(got["days"]) == 90 and got["days"][-1]["date"] == "2026-03-10"
    assert days["2026-03-08"]["down_s"] == 43200 and days["2026-03-08"]["status"] == "down"
    assert days["2026-03-05"] == {"date": "2026-03-05", "down_s": 0, "partial_s": 3600,
                                  "maintenance_s": 0, "status": "partial"}
    assert sum(d["down_s"] for d in got["days"]) == 43200
    assert got["percent"] == pytest.approx(100 * (1 - 0.5 / 90))
    assert tv["percent"] == 100 and {d["status"] for d in tv["days"]} == {"ok"}
    assert gamma["percent"] == 100
    assert [d["status"] for d in since["days"]] == ["no_data", "ok", "down", "ok", "ok"]


def test_availability_counts_an_ongoing_outage_up_to_now(db_path):
    open_(db_path, towns=["alpha"], at=NOW - 2 * H)
    with read(db_path) as conn:
        got = reads(conn).availability("alpha", "internet", NOW, days=1)
    assert got["days"][0]["down_s"] == 7200 and got["percent"] == pytest.approx(100 * (1 - 2 / 24))


BOWTIE = Polygon([(30.0, 60.0), (30.1, 60.1), (30.1, 60.0), (30.0, 60.1)])


@pytest.fixture
def busy_db(db_path):
    """Give the database with an open outage (#1), a resolved one (#2) and a future maintenance (#3)."""
    first = open_(db_path, towns=["alpha"], at=NOW - 3 * H)
    incidents.update_incident(db_path, first, status="identified", message="Found", at=NOW - 2 * H,
                              author="ops", now=NOW)
    second = open_(db_path, towns=["beta"], at=NOW - 5 * H)
    incidents.resolve_incident(db_path, second, message="Fixed", at=NOW - 4 * H, author="ops", now=NOW)
    incidents.schedule_maintenance(db_path, title="Upgrade", services=["tv"], towns=["gamma"],
                                   start=NOW + 2 * H, end=NOW + 4 * H, author="ops", now=NOW)
    return db_path


def _upd(path, incident_id=1, **kw):
    """Update an incident with test defaults."""
    args = {"status": "identified", "message": "More news", "author": "ops", "now": NOW}
    args.update(kw)
    incidents.update_incident(path, incident_id, **args)


def _maint(path, **kw):
    """Schedule a maintenance with test defaults."""
    args = {"title": "Works", "services": ["internet"], "towns": ["alpha"], "start": NOW + H,
            "end": NOW + 2 * H, "author": "ops", "now": NOW}
    args.update(kw)
    incidents.schedule_maintenance(path, **args)


REJECTED = {
    "unknown service": (lambda p: open_(p, towns=["alpha"], services=["radio"]),
                        "unknown service 'radio'; expected one of internet, tv, phone"),
    "no service": (lambda p: open_(p, towns=["alpha"], services=[]), "no service"),
    "unknown kind": (lambda p: open_(p, towns=["alpha"], kind="storm"), "'storm'"),
    "maintenance via open": (lambda p: open_(p, towns=["alpha"], kind="maintenance"), "schedule_maintenance"),
    "empty title": (lambda p: open_(p, towns=["alpha"], title="  "), "empty title"),
    "empty author": (lambda p: open_(p, towns=["alpha"], author=""), "empty author"),
    "nowhere": (lambda p: open_(p), "no towns and no area"),
    "unknown town": (lambda p: open_(p, towns=["alpah"]), "unknown town 'alpah'; did you mean alpha"),
    "self-crossing area": (lambda p: open_(p, area=BOWTIE), "Self-intersection"),
    "empty area": (lambda p: open_(p, area=Polygon()), "area is empty"),
    "point area": (lambda p: open_(p, area=Point(30.05, 60.05)), "Point"),
    "projected area": (lambda p: open_(p, area=box(500000, 6600000, 500100, 6600100)), "longitude/latitude"),
    "future start": (lambda p: open_(p, towns=["alpha"], at=NOW + H), "in the future"),
    "naive time": (lambda p: open_(p, towns=["alpha"], at=datetime(2026, 3, 10, 8)), "no time zone"),
    "eta before start": (lambda p: open_(p, towns=["alpha"], eta=NOW - 4 * H), "eta 2026-03-10T05:00:00Z"),
    "unknown status": (lambda p: _upd(p, status="fixed"), "unknown status 'fixed'"),
    "maintenance status on outage": (lambda p: _upd(p, status="scheduled"), "'scheduled'"),
    "update before start": (lambda p: _upd(p, at=NOW - 4 * H), "before the start"),
    "update before previous": (lambda p: _upd(p, at=NOW - 2.5 * H), "before the previous update"),
    "update in the future": (lambda p: _upd(p, at=NOW + H), "in the future"),
    "update eta before start": (lambda p: _upd(p, eta=NOW - 4 * H), "before the start"),
    "update empty message": (lambda p: _upd(p, message=""), "empty message"),
    "update unknown incident": (lambda p: _upd(p, 99), "no incident #99"),
    "update resolved": (lambda p: _upd(p, 2), "already resolved"),
    "resolve twice": (lambda p: incidents.resolve_incident(p, 2, message="Again", author="ops", now=NOW),
                      "already resolved"),
    "resolve before start": (lambda p: incidents.resolve_incident(
        p, 1, message="Done", at=NOW - 4 * H, author="ops", now=NOW), "before the start"),
    "resolve before previous update": (lambda p: incidents.resolve_incident(
        p, 1, message="Done", at=NOW - 2.5 * H, author="ops", now=NOW), "before the previous update"),
    "maintenance ends before it starts": (lambda p: _maint(p, end=NOW), "not after start"),
    "maintenance of no length": (lambda p: _maint(p, end=NOW + H), "not after start"),
    "maintenance unknown service": (lambda p: _maint(p, services=["radio"]), "'radio'"),
    "maintenance status by update": (lambda p: _upd(p, 3, status="in_progress"), "derived from its window"),
    "maintenance eta": (lambda p: _upd(p, 3, status="scheduled", eta=NOW + 5 * H), "not an ETA"),
    "complete maintenance before it starts": (lambda p: incidents.resolve_incident(
        p, 3, message="Done", author="ops", now=NOW), "before it began"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_input_names_the_value_and_changes_nothing(busy_db, case):
    action, expected = REJECTED[case]
    before = contents(busy_db)
    with pytest.raises(IncidentError) as caught:
        action(busy_db)
    assert expected in str(caught.value)
    assert contents(busy_db) == before


def test_list_orders_ongoing_then_upcoming_then_history(busy_db):
    with read(busy_db) as conn:
        assert [i["id"] for i in answers.incident_list(reads(conn), NOW, "all")] == [1, 3, 2]
        assert [i["id"] for i in answers.incident_list(reads(conn), NOW, service="tv")] == [3]
        assert answers.incident_report(reads(conn), 42, NOW) is None
        with pytest.raises(IncidentError, match="'radio'"):
            answers.incident_list(reads(conn), NOW, service="radio")


def test_demo_time_expressions():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)  # a Sunday, 15:00 in Moscow
    start = demo_incidents.demo_time("-3w sun 19:40", now, MSK)
    assert start == datetime(2026, 11, 1, 19, 40, tzinfo=MSK)
    assert demo_incidents.demo_time("start +1d 11:00", now, MSK, start) == datetime(2026, 11, 2, 11, 0, tzinfo=MSK)
    assert demo_incidents.demo_time("-6d 19h", now, MSK) == now - timedelta(days=6, hours=19)
    assert demo_incidents.demo_time("+2d 01:00", now, MSK) == datetime(2026, 11, 24, 1, 0, tzinfo=MSK)
    with pytest.raises(ValueError, match="'soon'"):
        demo_incidents.demo_time("soon", now, MSK)


@pytest.fixture
def demo_target(engine, demo_db_template, tmp_path, request):
    """The test's own copy of the demo database (build.build_database at DEMO_NOW) on the engine under test."""
    if engine == "sqlite":
        return shutil.copy(demo_db_template, tmp_path / "demo.sqlite")
    return request.getfixturevalue("pg_url")


def test_demo_incidents_tell_the_stories(demo_target):
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    assert now == DEMO_NOW  # the moment the demo database was built
    with read(demo_target) as conn:
        active = answers.incident_list(reads(conn), now)
        history = answers.in_language(answers.incident_list(reads(conn), now, "resolved"), "en")
        towns = {t.slug for t in layers.load_towns(conn)}
        tv = next(i for i in history if i["services"] == ["tv"] and "building" in i["title"])
        story = answers.in_language(answers.incident_report(reads(conn), tv["id"], now), "en")
        strips = [reads(conn).availability(slug, "internet", now) for slug in ("pskov", "sebezh")]
    assert any(i["kind"] == "outage" for i in active)
    assert any(i["kind"] == "maintenance" and i["status"] == "scheduled" for i in active)
    assert any(any(d["missed"] for d in i["deadline"].values()) for i in active)
    assert len(history) >= 8
    assert all(set(i["towns"]) <= towns for i in active + history)
    local = [(db.parse_iso(u["at"]).astimezone(MSK), u["status"]) for u in story["updates"]]
    assert local[0][0].weekday() == 6 and local[0][0].hour >= 18  # Sunday evening
    assert [s for _, s in local] == ["investigating", "identified", "identified", "monitoring", "resolved"]
    assert (local[2][0].weekday(), local[2][0].hour) == (0, 11)  # Monday 11:00: the burned fibre
    assert (local[3][0].weekday(), local[3][0].hour) == (0, 15)  # 15:00: cable replaced
    assert "torch" in story["cause"] and story["affected_towns"] == ["pskov"]
    assert all(s["percent"] < 100 for s in strips)


def test_point_answers_follow_the_clock_both_ways_within_one_revision(db_path):
    # The point index keeps only records not ended when it was built; asking about an earlier
    # moment must still find an incident that had ended by the later one.
    area_id = open_(db_path, area=BUILDING)
    town_id = open_(db_path, towns=["alpha"], title="Town")
    for incident_id in (area_id, town_id):
        incidents.resolve_incident(db_path, incident_id, message="Fixed", author="ops", at=NOW + H,
                                   now=NOW + 2 * H)
    with read(db_path) as conn:
        found = reads(conn)
    later = found.affecting_point(60.05, 30.05, NOW + 3 * H)
    earlier = found.affecting_point(60.05, 30.05, NOW)
    later_again = found.affecting_point(60.05, 30.05, NOW + 3 * H)
    assert later == [] and later_again == []
    assert sorted(r.id for r in earlier) == [area_id, town_id]
