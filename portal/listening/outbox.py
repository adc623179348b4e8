"""The outbox: events recorded in the transaction of the write that causes them, fanned out later.

A staff write (``portal.incidents.writes``) calls ``incident_changed`` inside its own
``db.writing`` transaction, so the incident change and the event that announces it commit
together or not at all. The worker's periodic check records what no write causes: a
maintenance window starting, a contract restoration deadline passing (once each: a unique
index). The worker then fans each due event out to one ``deliveries`` row per subscription
it reaches (``fan_out_due``), in one transaction per event.

Folding: an ``updated`` event is due ``fold_s`` after it was recorded; an event fanned out
takes the earlier pending updates of its incident with it (they are ``folded`` into it and
listed in its message), so a burst of updates within a minute makes one message.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import shapely
import sqlalchemy as sa

from portal.data import db, layers
from portal.data import statements as sql
from portal.incidents.records import load_records
from portal.listening.schema import SERVICE_BITS, STAFF_CELL

INCIDENT_KINDS = ("opened", "updated", "resolved", "maintenance_announced", "maintenance_started",
                  "deadline_passed")
# Events for staff, not subscribers: an incident drafted from customers' reports.
STAFF_KINDS = ("draft_opened",)


def _payload(rec, now: datetime, **extra) -> str:
    """Return the incident as it stands, for the message: what the subscriber is told."""
    latest = rec.updates[-1] if rec.updates else None
    etas = [u["eta"] for u in rec.updates if u["eta"]]
    body = {
        "incident": {
            "id": rec.id, "title": rec.title, "kind": rec.kind, "status": rec.status(now),
            "services": list(rec.services), "towns": list(rec.towns), "has_area": bool(rec.areas),
            "started_at": db.iso(rec.started_at), "resolved_at": db.iso(rec.resolved_at),
            "scheduled_end": db.iso(rec.scheduled_end), "eta": db.iso(etas[-1]) if etas else None,
            "cause": rec.cause,
            # Both languages: each subscriber's message is written in theirs (``messages.content``).
            "title_by_lang": rec.title_by_lang, "cause_by_lang": rec.cause_by_lang,
        },
        "update": None if latest is None else {
            "at": db.iso(latest["at"]), "status": latest["status"], "message": latest["message"],
            "message_by_lang": latest.get("message_by_lang"), "eta": db.iso(latest["eta"])},
        **extra,
    }
    return json.dumps(body, ensure_ascii=False)


def incident_changed(conn, incident_id, now: datetime | None = None) -> int:
    """Record the event a staff write to this incident makes (inside its transaction); return its id.

    Opened (or a maintenance announced) when the incident has one update, resolved when it is
    closed, updated otherwise.
    """
    rec = load_records(conn, [int(incident_id)])[0]
    # As it stands once this write's update is in force (an update may be dated a little ahead).
    now = max([now or db.utcnow(), rec.started_at if rec.kind != "maintenance" else rec.updates[0]["at"]]
              + [u["at"] for u in rec.updates])
    if rec.resolved_at is not None:
        kind = "resolved"
    elif len(rec.updates) <= 1:
        kind = "maintenance_announced" if rec.kind == "maintenance" else "opened"
    else:
        kind = "updated"
    return _insert(conn, kind, _payload(rec, now), incident_id=rec.id)


def record_confirmation(conn, subscription_id: int, now: datetime) -> int:
    """Record the confirmation message of a new subscription (its only delivery until confirmed)."""
    return _insert(conn, "confirm", "{}", subscription_id=subscription_id)


def record_draft(conn, draft_id: int) -> int:
    """Record that the spike rule drafted an incident (inside the report's transaction), for staff."""
    return _insert(conn, "draft_opened", json.dumps({"draft": _draft(conn, draft_id)}, ensure_ascii=False))


def _draft(conn, draft_id: int) -> dict:
    """Return what staff are told of a draft: place, service, distinct reporters and networks, usual level."""
    row = sql.run(conn, _statements().draft, id=draft_id).fetchone()
    return {"id": row["id"], "town": row["town"], "cell": row["cell"], "service": row["service"],
            "opened_at": db.iso(datetime.fromtimestamp(row["opened_at"], timezone.utc)),
            "reporters": row["reporters"], "networks": row["networks"], "usual": round(row["usual"], 1)}


def _insert(conn, kind, payload, *, incident_id=None, subscription_id=None, service=None) -> int:
    """Insert one pending event, due now (the wall clock: the worker's own notion of now)."""
    stamp = time.time()
    return sql.scalar(conn, _statements().insert, kind=kind, incident_id=incident_id,
                      subscription_id=subscription_id, service=service, payload=payload, created_at=stamp,
                      due_at=stamp)


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of the outbox that run on every engine (``portal.data.statements``)."""
    d, o = sql.table("report_drafts"), sql.table("outbox")
    return SimpleNamespace(
        draft=sql.Statement(sa.select(d.c.id, d.c.town, d.c.cell, d.c.service, d.c.opened_at, d.c.reporters,
                                      d.c.networks, d.c.usual).where(d.c.id == sa.bindparam("id"))),
        insert=sql.Statement(sa.insert(o).values({c: sa.bindparam(c) for c in (
            "kind", "incident_id", "subscription_id", "service", "payload", "created_at", "due_at")})
            .returning(o.c.id)),
    )


def record_periodic(conn, now: datetime, deadlines: dict) -> list[int]:
    """Record maintenance windows that have started and restoration deadlines that passed (once each)."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM incidents WHERE resolved_at IS NULL AND started_at <= ?"
        " AND (kind <> 'maintenance' OR scheduled_end > ?)", (db.iso(now), db.iso(now)))]
    made = []
    for rec in load_records(conn, ids) if ids else []:
        if rec.kind == "maintenance":
            if rec.status(now) == "in_progress":
                made.append(_insert_once(conn, "maintenance_started", _payload(rec, now), rec.id, None))
            continue
        for service in rec.services:
            hours = deadlines.get(service)
            if hours is None:
                continue
            due = rec.started_at + timedelta(hours=hours)
            if due <= now:
                payload = _payload(rec, now, deadline={"service": service, "hours": hours, "due_at": db.iso(due)})
                made.append(_insert_once(conn, "deadline_passed", payload, rec.id, service))
    return [m for m in made if m]


def _insert_once(conn, kind, payload, incident_id, service) -> int | None:
    """Insert an event unless one of this kind is already recorded for the incident (and service)."""
    stamp = time.time()
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, incident_id, service, payload, created_at, due_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (kind, incident_id, service, payload, stamp, stamp))
    return cur.lastrowid if cur.rowcount else None


# --- fan-out ------------------------------------------------------------------


def due_events(conn, now_ts: float, fold_s: float) -> list[int]:
    """Return the ids of pending events that may be fanned out now (updates wait ``fold_s``)."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM outbox WHERE state = 'pending' AND due_at <= ?"
        " AND (kind <> 'updated' OR created_at + ? <= ?) ORDER BY id", (now_ts, fold_s, now_ts))]


def fan_out(conn, event_id: int, now_ts: float, staff: tuple = ()) -> int:
    """Create the deliveries of one pending event (inside the caller's transaction); return how many.

    A later pending event of the same incident takes an update's place (the update is folded
    into it); earlier pending updates are folded into this one. A staff event goes to the
    ``staff`` recipients, ``(channel, address, lang)`` from the settings.
    """
    event = conn.execute("SELECT * FROM outbox WHERE id = ? AND state = 'pending'", (event_id,)).fetchone()
    if event is None:
        return 0  # another worker got there first
    if event["kind"] in STAFF_KINDS:
        return _deliver_to_staff(conn, event, now_ts, staff)
    from portal.listening import letters  # mail to one person (interest, feedback): its own table

    if event["kind"] in letters.KINDS:
        return _done(conn, event_id, letters.fan_out(conn, event, now_ts))
    if event["kind"] == "confirm":
        count = conn.execute(
            "INSERT OR IGNORE INTO deliveries (event_id, subscription_id, due_at)"
            " SELECT ?, id, ? FROM subscriptions WHERE id = ?", (event_id, now_ts, event["subscription_id"])).rowcount
        return _done(conn, event_id, count)
    incident_id = event["incident_id"]
    if event["kind"] == "updated":
        later = conn.execute(
            "SELECT id FROM outbox WHERE incident_id = ? AND id > ? AND state = 'pending'"
            " AND kind IN ('updated', 'resolved') ORDER BY id DESC LIMIT 1", (incident_id, event_id)).fetchone()
        if later is not None:
            conn.execute("UPDATE outbox SET state = 'folded', folded_into = ? WHERE id = ?", (later[0], event_id))
            conn.execute("UPDATE outbox SET folded_into = ? WHERE folded_into = ?", (later[0], event_id))
            return 0
    if event["kind"] in ("updated", "resolved"):
        conn.execute("UPDATE outbox SET folded_into = ? WHERE folded_into IN (SELECT id FROM outbox WHERE"
                     " incident_id = ? AND id < ? AND state = 'pending' AND kind = 'updated')",
                     (event_id, incident_id, event_id))
        conn.execute("UPDATE outbox SET state = 'folded', folded_into = ? WHERE incident_id = ? AND id < ?"
                     " AND state = 'pending' AND kind = 'updated'", (event_id, incident_id, event_id))
    recs = load_records(conn, [incident_id])
    if not recs:
        return _done(conn, event_id, 0)
    rec = recs[0]
    services = [event["service"]] if event["service"] else list(rec.services)
    mask = sum(SERVICE_BITS[s] for s in services if s in SERVICE_BITS)
    count = _deliver_to_towns(conn, event_id, now_ts, affected_towns(conn, rec), mask)
    count += _deliver_to_points(conn, event_id, now_ts, rec, mask)
    return _done(conn, event_id, count)


def _deliver_to_staff(conn, event, now_ts: float, staff: tuple) -> int:
    """Insert a delivery of a draft to every staff recipient, with the draft's count as it stands now."""
    draft_id = json.loads(event["payload"])["draft"]["id"]
    # Reports kept coming since the draft was made: staff read the count at fan-out, the same in
    # every copy and every retry (the payload is rewritten once, in this transaction).
    conn.execute("UPDATE outbox SET payload = ? WHERE id = ?",
                 (json.dumps({"draft": _draft(conn, draft_id)}, ensure_ascii=False), event["id"]))
    ids = [staff_recipient(conn, channel, address, lang) for channel, address, lang in staff]
    rows = [(event["id"], i, now_ts) for i in ids]
    count = conn.executemany("INSERT OR IGNORE INTO deliveries (event_id, subscription_id, due_at)"
                             " VALUES (?, ?, ?)", rows).rowcount if rows else 0
    return _done(conn, event["id"], count)


def staff_recipient(conn, channel: str, address: str, lang: str) -> int:
    """Return the id of the staff recipient row of an address, made (confirmed) on first use."""
    found = conn.execute("SELECT id FROM subscriptions WHERE staff AND channel = ? AND address = ?",
                         (channel, address)).fetchone()
    if found is not None:
        return found[0]
    import secrets

    return conn.execute(
        "INSERT INTO subscriptions (channel, address, secret, token, cell, services, lang, created_at,"
        " confirmed_at, staff) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        (channel, address, secrets.token_hex(32) if channel == "webhook" else None, secrets.token_urlsafe(24),
         STAFF_CELL, sum(SERVICE_BITS.values()), lang, db.iso(db.utcnow()), db.iso(db.utcnow()))).lastrowid


def _done(conn, event_id: int, count: int) -> int:
    """Mark the event fanned out with its number of deliveries."""
    conn.execute("UPDATE outbox SET state = 'done', deliveries = ? WHERE id = ?", (count, event_id))
    return count


def _live_towns(conn) -> list:
    """Return the live towns layer (slug and extent)."""
    return layers.load_towns(conn)


def affected_towns(conn, rec) -> list[str]:
    """Return the slugs the incident affects: listed, or sharing interior with one of its areas."""
    slugs = set(rec.towns)
    if rec.areas:
        towns = _live_towns(conn)
        tree = shapely.STRtree([t.geometry for t in towns])
        for area in rec.areas:
            for i in tree.query(area, predicate="intersects").tolist():
                if shapely.relate_pattern(area, towns[i].geometry, "T********"):
                    slugs.add(towns[i].slug)
    return sorted(slugs)


def _deliver_to_towns(conn, event_id, now_ts, slugs, mask) -> int:
    """Insert a delivery for every confirmed town subscription of the towns and services."""
    if not slugs or not mask:
        return 0
    marks = ",".join("?" * len(slugs))
    return conn.execute(
        "INSERT OR IGNORE INTO deliveries (event_id, subscription_id, due_at)"
        f" SELECT ?, id, ? FROM subscriptions WHERE town IN ({marks}) AND confirmed_at IS NOT NULL"
        " AND services & ? <> 0", (event_id, now_ts, *slugs, mask)).rowcount


def _deliver_to_points(conn, event_id, now_ts, rec, mask) -> int:
    """Insert a delivery for every confirmed point subscription whose cell centre the incident covers."""
    if not mask:
        return 0
    shapes = list(rec.areas)
    if rec.towns:
        by_slug = {t.slug: t for t in _live_towns(conn)}
        shapes += [by_slug[s].geometry for s in rec.towns if s in by_slug]
    if not shapes:
        return 0
    where = shapely.union_all(shapes)
    minx, miny, maxx, maxy = where.bounds
    rows = conn.execute(
        "SELECT id, lat, lon FROM subscriptions WHERE cell IS NOT NULL AND confirmed_at IS NOT NULL"
        " AND services & ? <> 0 AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
        (mask, miny, maxy, minx, maxx)).fetchall()
    if not rows:
        return 0
    ids = np.array([r[0] for r in rows])
    inside = shapely.intersects_xy(where, np.array([r[2] for r in rows]), np.array([r[1] for r in rows]))
    hits = ids[inside].tolist()
    return conn.executemany("INSERT OR IGNORE INTO deliveries (event_id, subscription_id, due_at) VALUES (?, ?, ?)",
                            [(event_id, i, now_ts) for i in hits]).rowcount


def folded_updates(conn, event_id: int) -> list[dict]:
    """Return the updates folded into an event, oldest first (listed in its message)."""
    rows = conn.execute("SELECT payload FROM outbox WHERE folded_into = ? ORDER BY id", (event_id,)).fetchall()
    return [json.loads(r[0])["update"] for r in rows if json.loads(r[0]).get("update")]
