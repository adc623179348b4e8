"""Incident writes, their records, the outbox and its fan-out give the same answers on SQLite and PostgreSQL.

Every test here runs twice, on the demo database copied to each engine (``db_target``); the last
one writes the same incident to both and compares what ``load_records`` reads back.
"""
from __future__ import annotations

import time
from contextlib import closing
from datetime import timedelta

import pytest
import shapely
from enginetools import counts
from shapely.geometry import box

from portal.data import db
from portal.data import statements as sql
from portal.incidents import writes
from portal.incidents.records import IncidentError, load_records
from portal.listening import outbox, store
from tests.conftest import DEMO_NOW

H = timedelta(hours=1)
NOW = DEMO_NOW
AREA = box(27.60, 57.80, 27.63, 57.82)  # a few streets of Pechory, drawn by hand
INSIDE, OUTSIDE = (57.81, 27.615), (57.0, 28.5)  # (lat, lon) of two point subscribers


def story(target) -> int:
    """Open an outage in Pskov and an area, update it, resolve it; return its id."""
    incident_id = writes.open_incident(target, title="Нет интернета", title_en="No internet",
                                       services=["tv", "internet"], towns=["pskov"], area=AREA,
                                       at=NOW - 3 * H, eta=NOW + H, message="Ищем причину", author="ops",
                                       now=NOW)
    writes.update_incident(target, incident_id, status="identified", message="Cable cut", at=NOW - 2 * H,
                           eta=NOW + 2 * H, cause="Обрыв кабеля", cause_en="Cable cut", author="ops", now=NOW)
    writes.resolve_incident(target, incident_id, message="Fixed", message_en=None, at=NOW - H, author="lead",
                            now=NOW)
    return incident_id


def records_of(target, incident_id):
    """Return the stored record of an incident, read through a write connection to the target."""
    with closing(sql.connect(target)) as conn:
        return load_records(conn, [incident_id])[0]


def summary(rec) -> dict:
    """Return what a record says, geometries as WKB."""
    said = ("at", "status", "message", "eta", "recorded_at", "message_by_lang")
    return {"title": rec.title_by_lang, "cause": rec.cause_by_lang, "kind": rec.kind,
            "services": rec.services, "towns": rec.towns, "areas": [shapely.to_wkb(a) for a in rec.areas],
            "started": rec.started_at, "resolved": rec.resolved_at, "created": rec.created_at,
            "edits": rec.edits, "updates": [{k: u[k] for k in said} for u in rec.updates]}


def test_a_story_is_recorded_whole_and_each_write_bumps_the_revision_once(db_target):
    with closing(sql.connect(db_target)) as conn:
        before = db.revision(conn)
    incident_id = story(db_target)
    rec = records_of(db_target, incident_id)
    assert rec.services == ("internet", "tv") and rec.towns == ("pskov",)
    assert [shapely.to_wkb(a) for a in rec.areas] == [shapely.to_wkb(AREA)]
    assert [(u["at"], u["status"], u["eta"]) for u in rec.updates] == [
        (NOW - 3 * H, "investigating", NOW + H), (NOW - 2 * H, "identified", NOW + 2 * H),
        (NOW - H, "resolved", None)]
    assert rec.resolved_at == NOW - H and rec.cause_by_lang == {"ru": "Обрыв кабеля", "en": "Cable cut"}
    assert rec.title_by_lang == {"ru": "Нет интернета", "en": "No internet"}
    assert counts(db_target)["revision"] == before + 3
    changes = writes.edit_incident(db_target, incident_id, title_en="No internet in Pskov", author="ops",
                                   now=NOW)
    assert changes == {"title_en": {"before": "No internet", "after": "No internet in Pskov"}}
    edited = records_of(db_target, incident_id)
    assert edited.title_by_lang["en"] == "No internet in Pskov" and edited.edits == [NOW]
    assert counts(db_target)["revision"] == before + 4
    with closing(sql.connect(db_target)) as conn:
        kinds = [r[0] for r in conn.execute(f"SELECT kind FROM outbox WHERE incident_id = {incident_id}"
                                            " ORDER BY id")]
        actions = [r[0] for r in conn.execute(
            f"SELECT action FROM audit WHERE subject = 'incident:{incident_id}' ORDER BY id")]
    assert kinds == ["opened", "updated", "resolved"]  # one event per change; a text correction tells no one
    assert actions == ["incident.open", "incident.update", "incident.resolve", "incident.edit"]


@pytest.mark.parametrize("write, words", [
    (lambda t, i: writes.open_incident(t, title="X", services=["internet"], towns=["pskov", "pskovv"],
                                       author="ops", now=NOW), "unknown town 'pskovv'"),
    (lambda t, i: writes.update_incident(t, i, status="resolved", eta=NOW + H, message="Done", author="ops",
                                         now=NOW), "a resolved incident has no ETA"),
    (lambda t, i: writes.update_incident(t, i, status="monitoring", message="Earlier", at=NOW - 4 * H,
                                         author="ops", now=NOW), "before the start"),
    (lambda t, i: writes.cancel_maintenance(t, i, message="Off", author="ops", now=NOW), "not a maintenance"),
])
def test_a_refused_write_leaves_the_database_as_it_was(db_target, write, words):
    incident_id = writes.open_incident(db_target, title="Нет ТВ", services=["tv"], towns=["pechory"],
                                       at=NOW - 2 * H, author="ops", now=NOW)
    before = counts(db_target)
    with pytest.raises(IncidentError, match=words):
        write(db_target, incident_id)
    assert counts(db_target) == before


def _subscribe(conn, address, *, town=None, point=None, services=1, confirmed=True) -> int:
    """Insert a subscription row (plain SQL valid on both engines); return its id."""
    cell, lat, lon = ("c1", *point) if point else (None, None, None)
    values = ", ".join("NULL" if v is None else repr(v) for v in (
        address, f"token-{address}", town, cell, lat, lon, services, "2026-11-01T00:00:00Z",
        "2026-11-01T00:00:00Z" if confirmed else None))
    conn.execute("INSERT INTO subscriptions (channel, address, token, town, cell, lat, lon, services,"
                 f" created_at, confirmed_at, lang) VALUES ('email', {values}, 'en')")
    return conn.execute(f"SELECT id FROM subscriptions WHERE address = '{address}'").fetchone()[0]


def test_fan_out_makes_one_delivery_per_reached_subscription_and_folds_updates(write_conn, db_target):
    conn = write_conn
    reached = {_subscribe(conn, "town@example.org", town="pskov"),
               _subscribe(conn, "inside@example.org", point=INSIDE, services=3),
               _subscribe(conn, "next-door@example.org", point=(INSIDE[0] + 0.001, INSIDE[1]))}
    for address, kw in (("tv-only@example.org", {"town": "pskov", "services": 2}),
                        ("unconfirmed@example.org", {"town": "pskov", "confirmed": False}),
                        ("elsewhere@example.org", {"town": "sebezh"}),
                        ("outside@example.org", {"point": OUTSIDE})):
        _subscribe(conn, address, **kw)
    incident_id = writes.open_incident(db_target, title="No internet", services=["internet"], towns=["pskov"],
                                       area=AREA, at=NOW - 3 * H, author="ops", now=NOW)
    now_ts = time.time() + 120  # past the fold delay of the updates below
    (opened,) = [e for e in outbox.due_events(conn, now_ts, 60) if _incident_of(conn, e) == incident_id]
    with store.transaction(conn):
        assert outbox.fan_out(conn, opened, now_ts) == 3
    assert _delivered(conn, opened) == reached
    with store.transaction(conn):
        assert outbox.fan_out(conn, opened, now_ts) == 0  # done already: nothing twice
    writes.update_incident(db_target, incident_id, status="identified", message="Found", author="ops",
                           now=NOW)
    writes.resolve_incident(db_target, incident_id, message="Fixed", author="ops", now=NOW)
    updated, resolved = [e for e in outbox.due_events(conn, time.time() + 120, 60)
                         if _incident_of(conn, e) == incident_id]
    with store.transaction(conn):
        assert outbox.fan_out(conn, updated, now_ts) == 0  # a later resolution takes its place
        assert outbox.fan_out(conn, resolved, now_ts) == 3
    assert _delivered(conn, resolved) == reached
    assert [u["status"] for u in outbox.folded_updates(conn, resolved)] == ["identified"]
    states = dict(conn.execute(f"SELECT id, state FROM outbox WHERE incident_id = {incident_id}").fetchall())
    assert states == {opened: "done", updated: "folded", resolved: "done"}


def test_periodic_events_are_recorded_once_and_staff_recipients_made_once(write_conn, db_target):
    incident_id = writes.open_incident(db_target, title="No phone", services=["phone"], towns=["pskov"],
                                       at=NOW - 3 * H, author="ops", now=NOW)
    with store.transaction(write_conn):
        first = outbox.record_periodic(write_conn, NOW, {"phone": 1})
    with store.transaction(write_conn):
        again = outbox.record_periodic(write_conn, NOW, {"phone": 1})
    mine = write_conn.execute("SELECT id FROM outbox WHERE kind = 'deadline_passed'"
                              f" AND incident_id = {incident_id}").fetchall()
    assert len(mine) == 1 and mine[0][0] in first and again == []
    staff = outbox.staff_recipient(write_conn, "email", "noc@example.org", "en")
    assert outbox.staff_recipient(write_conn, "email", "noc@example.org", "en") == staff


def test_both_engines_read_back_the_same_incident(db_path, pg_url):
    assert summary(records_of(db_path, story(db_path))) == summary(records_of(pg_url, story(pg_url)))


def _incident_of(conn, event_id: int):
    return conn.execute(f"SELECT incident_id FROM outbox WHERE id = {int(event_id)}").fetchone()[0]


def _delivered(conn, event_id: int) -> set[int]:
    found = conn.execute(f"SELECT subscription_id FROM deliveries WHERE event_id = {int(event_id)}")
    return {r[0] for r in found}


def test_deliveries_already_made_are_not_counted_again(write_conn):
    conn = write_conn
    ids = [_subscribe(conn, f"s{n}@example.org", town="pskov") for n in range(3)]
    event = conn.execute("INSERT INTO outbox (kind, payload, created_at, due_at)"
                         " VALUES ('opened', '{}', 0, 0) RETURNING id").fetchone()[0]
    with store.transaction(conn):
        assert outbox._deliver(conn, event, ids[:2], 1.0) == 2
        assert outbox._deliver(conn, event, ids, 1.0) == 1  # the driver counts every run of executemany
    assert _delivered(conn, event) == set(ids)
