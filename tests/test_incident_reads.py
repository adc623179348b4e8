"""The incident read model on hand-made towns and incidents, whose answers are known on paper."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dbtools import database_with_towns, square_town
from enginetools import engine_copy
from shapely.geometry import box

from portal import answers
from portal.coverage import snapshot as state
from portal.coverage.places import Gazetteer
from portal.data import db
from portal.incidents import writes
from portal.incidents.reads import IncidentReads
from portal.incidents.records import IncidentError, Record

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow
H = timedelta(hours=1)
HOURS = {"internet": 24, "tv": 24, "phone": 72}

# Alpha is the square 30.0-30.1 E x 60.0-60.1 N, Beta the one east of it (sharing lon 30.1).
ALPHA = square_town("alpha", "Alpha", 30.0, 60.0)
BETA = square_town("beta", "Beta", 30.1, 60.0)
TOWNS = Gazetteer([ALPHA, BETA])
BUILDING = box(30.04, 60.04, 30.06, 60.06)  # inside Alpha
ACROSS = box(30.08, 60.04, 30.12, 60.06)  # over the Alpha/Beta edge
TOUCHING = box(29.9, 60.0, 30.0, 60.1)  # west of Alpha, sharing only its edge


def record(id, *, kind="outage", services=("internet",), towns=(), areas=(), start, resolved=None,
           end=None, updates=None) -> Record:
    """Return an incident record as the database would hold it."""
    first = "scheduled" if kind == "maintenance" else "investigating"
    return Record(id=id, title=f"Incident {id}", kind=kind, cause=None, started_at=start,
                  resolved_at=resolved, scheduled_end=end, services=tuple(services), towns=tuple(towns),
                  areas=list(areas),
                  updates=updates or [{"at": start, "status": first, "message": "Noted", "eta": None}])


def reads(*records: Record, hours=HOURS) -> IncidentReads:
    """Return the read model of these records over Alpha and Beta."""
    return IncidentReads(list(records), TOWNS, hours)


def ids(found) -> list[int]:
    """Return the ids of records, in order."""
    return [r.id for r in found]


@pytest.mark.parametrize("lat, lon, affected", [
    (60.05, 30.05, True),   # in the building
    (60.06, 30.05, True),   # on its border
    (60.07, 30.05, False),  # elsewhere in Alpha, which is not listed
    (60.05, 30.15, False),  # in Beta
])
def test_an_area_covers_the_points_inside_it_and_on_its_border(lat, lon, affected):
    found = reads(record(1, areas=[BUILDING], start=NOW - H))
    assert ids(found.affecting_point(lat, lon, NOW)) == ([1] if affected else [])


def test_a_listed_town_covers_its_whole_extent_and_only_it():
    found = reads(record(1, towns=["beta"], start=NOW - H))
    assert ids(found.affecting_point(60.05, 30.15, NOW)) == [1]  # inside Beta
    assert ids(found.affecting_point(60.05, 30.1, NOW)) == [1]  # on the edge Beta shares with Alpha
    assert ids(found.affecting_point(60.05, 30.05, NOW)) == []  # inside Alpha only
    assert ids(found.affecting_point(60.05, 30.05, NOW, town_slug="beta")) == [1]  # the caller's town counts
    assert ids(found.affecting_town("beta", NOW)) == [1] and found.affecting_town("alpha", NOW) == []


def test_towns_affected_by_an_area_share_its_interior_not_just_an_edge():
    found = reads(record(1, areas=[ACROSS], start=NOW - H), record(2, areas=[TOUCHING], start=NOW - H),
                  record(3, towns=["alpha"], areas=[BUILDING], start=NOW - H))
    assert [found.affected_towns(found.get(i)) for i in (1, 2, 3)] == [
        {"alpha", "beta"}, frozenset(), {"alpha"}]
    assert ids(found.affecting_town("alpha", NOW)) == [3, 1]  # latest start first; ids break the tie
    assert found.area(found.get(3)).equals(ALPHA.geometry)  # the building lies inside listed Alpha


def test_maintenance_is_scheduled_then_in_progress_then_completed():
    window = record(1, kind="maintenance", towns=["alpha"], start=NOW + H, end=NOW + 3 * H)
    found = reads(window)
    moments = {"before": NOW, "during": NOW + 2 * H, "after": NOW + 4 * H}
    assert {k: window.status(t) for k, t in moments.items()} == {
        "before": "scheduled", "during": "in_progress", "after": "completed"}
    assert {k: ids(found.active(t)) for k, t in moments.items()} == {
        "before": [1], "during": [1], "after": []}
    assert {k: ids(found.history(t)) for k, t in moments.items()} == {
        "before": [], "during": [], "after": [1]}
    assert {k: found.service_status(t)["services"]["internet"]["status"] for k, t in moments.items()} == {
        "before": "operational", "during": "under_maintenance", "after": "operational"}
    # Is Alpha down? Not while the work is only announced, yes while it runs.
    assert {k: answers.place_status(found, t, town="alpha")["down"] for k, t in moments.items()} == {
        "before": False, "during": True, "after": False}
    assert [u["status"] for u in window.timeline(NOW + 4 * H)] == ["scheduled", "in_progress", "completed"]
    assert window.deadlines(NOW + 2 * H, HOURS) == {}  # work announced has no restoration deadline


def test_history_durations_and_order():
    short = record(1, towns=["alpha"], start=NOW - 5 * H, resolved=NOW - 2 * H)  # 3 h, ended 2 h ago
    long = record(2, towns=["beta"], start=NOW - 30 * H, resolved=NOW - 4 * H)  # 26 h, ended 4 h ago
    ongoing = record(3, towns=["alpha"], start=NOW - 90 * timedelta(minutes=1))
    found = reads(short, long, ongoing)
    assert ids(found.history(NOW)) == [1, 2]  # latest end first
    assert ids(found.active(NOW)) == [3]
    assert [r.duration_s(NOW) for r in (short, long, ongoing)] == [3 * 3600, 26 * 3600, 90 * 60]
    assert ids(found.select(NOW, "all")) == [3, 1, 2]
    assert ids(found.history(NOW, town="alpha")) == [1]
    # Seen from before it ended, the short one had lasted 2 hours, and only the long one was history.
    assert short.duration_s(NOW - 3 * H) == 2 * 3600 and ids(found.history(NOW - 3 * H)) == [2]


def test_deadlines_come_from_the_hours_the_model_is_given():
    late = record(1, services=("internet", "phone"), towns=["alpha"], start=NOW - 25 * H)
    assert reads(late).deadlines(late, NOW) == {
        "internet": {"hours": 24, "due_at": "2026-03-10T08:00:00Z", "missed": True, "remaining_s": -3600},
        "phone": {"hours": 72, "due_at": "2026-03-12T08:00:00Z", "missed": False, "remaining_s": 47 * 3600},
    }
    strict = reads(late, hours={"internet": 1})
    assert strict.deadlines(late, NOW)["internet"]["due_at"] == "2026-03-09T09:00:00Z"
    assert "phone" not in strict.deadlines(late, NOW)


def test_an_outage_of_half_the_towns_is_major_one_of_none_partial():
    far = box(31.0, 61.0, 31.01, 61.01)  # a cut cable out in the country, in no town
    found = reads(record(1, towns=["alpha"], start=NOW - H), record(2, services=("tv",), areas=[far],
                                                                      start=NOW - H))
    status = found.service_status(NOW)
    assert status["services"]["internet"] == {"status": "major_outage", "incidents": [1], "towns": ["alpha"]}
    assert status["services"]["tv"] == {"status": "partial_outage", "incidents": [2], "towns": []}
    assert status["services"]["phone"]["status"] == "operational" and status["status"] == "major_outage"


def test_availability_counts_only_whole_town_outages_as_downtime():
    # A listed outage from 00:00 to 12:00 Moscow time on 8 March, and one of a building on 9 March.
    msk_midnight = datetime(2026, 3, 7, 21, 0, tzinfo=timezone.utc)
    found = reads(record(1, towns=["alpha"], start=msk_midnight, resolved=msk_midnight + 12 * H),
                  record(2, areas=[BUILDING], start=msk_midnight + 30 * H, resolved=msk_midnight + 31 * H))
    got = found.availability("alpha", "internet", NOW, days=3, tz="Europe/Moscow")
    assert [(d["date"], d["status"], d["down_s"], d["partial_s"]) for d in got["days"]] == [
        ("2026-03-08", "down", 12 * 3600, 0), ("2026-03-09", "partial", 0, 3600), ("2026-03-10", "ok", 0, 0)]
    assert got["down_s"] == 12 * 3600 and got["percent"] == pytest.approx(100 * (1 - 12 / 72))
    assert found.availability("beta", "internet", NOW, days=3)["percent"] == 100


def test_unknown_ids_services_and_listings():
    found = reads(record(1, towns=["alpha"], start=NOW - H))
    assert found.get(1).title == "Incident 1" and found.get(2) is None
    with pytest.raises(IncidentError, match="unknown service 'radio'; expected one of internet, tv, phone"):
        found.select(NOW, service="radio")
    with pytest.raises(IncidentError, match="unknown status 'open'"):
        found.select(NOW, "open")


@pytest.fixture(scope="module")
def alpha_and_beta(tmp_path_factory):
    """A database whose live towns are Alpha and Beta, made once: the template of ``path``."""
    return database_with_towns(tmp_path_factory.mktemp("alpha-beta") / "reads.sqlite", [ALPHA, BETA])


@pytest.fixture
def path(engine, alpha_and_beta, tmp_path, request):
    """Alpha and Beta on the engine under test: an SQLite path or a postgresql:// URL."""
    return engine_copy(engine, alpha_and_beta, tmp_path, request)


def snapshot_of_a_request(conn, path, *hours):
    """Return the snapshot as a web request reads it: inside its own read transaction (on either engine)."""
    conn.begin()
    try:
        return state.snapshot(conn, str(path), 150, *hours)
    finally:
        conn.rollback()


def test_the_snapshot_reads_incidents_again_after_a_write_and_keeps_the_coverage(path):
    conn = db.connect_readonly(path)
    try:
        first = snapshot_of_a_request(conn, path)
        assert first.incidents.active(NOW) == [] and snapshot_of_a_request(conn, path) is first
        new = writes.open_incident(path, title="Cut", services=["tv"], towns=["beta"], author="ops",
                                   at=NOW - H, now=NOW)
        second = snapshot_of_a_request(conn, path)
        assert ids(second.incidents.affecting_point(60.05, 30.15, NOW)) == [new]
        # Only the incidents were read again: the towns and the coverage index are the same objects.
        assert second.coverage is first.coverage and second.incidents.towns is first.gazetteer
        # Other deadlines are another reading of the same incidents.
        strict = snapshot_of_a_request(conn, path, {"tv": 1})
        assert strict.incidents.deadlines(strict.incidents.get(new), NOW)["tv"]["missed"] is False
        assert strict.incidents.deadlines(strict.incidents.get(new), NOW + H)["tv"]["missed"] is True
    finally:
        conn.close()
