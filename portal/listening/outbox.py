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
    ids = [r[0] for r in sql.run(conn, _fan().open_incidents, now=db.iso(now))]
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
                deadline = {"service": service, "hours": hours, "due_at": db.iso(due)}
                payload = _payload(rec, now, deadline=deadline)
                made.append(_insert_once(conn, "deadline_passed", payload, rec.id, service))
    return [m for m in made if m]


def _insert_once(conn, kind, payload, incident_id, service) -> int | None:
    """Insert an event unless one of this kind is already recorded for the incident (and service)."""
    stamp = time.time()
    return sql.scalar(conn, _fan().insert_once, kind=kind, incident_id=incident_id, service=service,
                      payload=payload, created_at=stamp, due_at=stamp)


# --- fan-out ------------------------------------------------------------------


def due_events(conn, now_ts: float, fold_s: float) -> list[int]:
    """Return the ids of pending events that may be fanned out now (updates wait ``fold_s``)."""
    return [r[0] for r in sql.run(conn, _fan().due, now=now_ts, fold=fold_s)]


def fan_out(conn, event_id: int, now_ts: float, staff: tuple = ()) -> int:
    """Create the deliveries of one pending event (inside the caller's transaction); return how many.

    A later pending event of the same incident takes an update's place (the update is folded
    into it); earlier pending updates are folded into this one. A staff event goes to the
    ``staff`` recipients, ``(channel, address, lang)`` from the settings.
    """
    q = _fan()
    event = sql.run(conn, q.event, id=event_id).fetchone()
    if event is None:
        return 0  # another worker got there first
    if event["kind"] in STAFF_KINDS:
        return _deliver_to_staff(conn, event, now_ts, staff)
    from portal.listening import letters  # mail to one person (interest, feedback): its own table

    if event["kind"] in letters.KINDS:
        return _done(conn, event_id, letters.fan_out(conn, event, now_ts))
    if event["kind"] == "confirm":
        count = sql.run(conn, q.deliver_confirm, event_id=event_id, due_at=now_ts,
                        subscription_id=event["subscription_id"]).rowcount
        return _done(conn, event_id, count)
    incident_id = event["incident_id"]
    if event["kind"] == "updated":
        later = sql.scalar(conn, q.later, incident_id=incident_id, id=event_id)
        if later is not None:
            sql.run(conn, q.fold, into=later, id=event_id)
            sql.run(conn, q.refold, into=later, id=event_id)
            return 0
    if event["kind"] in ("updated", "resolved"):
        sql.run(conn, q.refold_earlier, incident_id=incident_id, id=event_id)
        sql.run(conn, q.fold_earlier, incident_id=incident_id, id=event_id)
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
    sql.run(conn, _fan().payload, payload=json.dumps({"draft": _draft(conn, draft_id)}, ensure_ascii=False),
            id=event["id"])
    ids = [staff_recipient(conn, channel, address, lang) for channel, address, lang in staff]
    count = _deliver(conn, event["id"], ids, now_ts)
    return _done(conn, event["id"], count)


def staff_recipient(conn, channel: str, address: str, lang: str) -> int:
    """Return the id of the staff recipient row of an address, made (confirmed) on first use."""
    q = _fan()
    found = sql.scalar(conn, q.staff, channel=channel, address=address)
    if found is not None:
        return found
    import secrets

    return sql.scalar(conn, q.new_staff, channel=channel, address=address,
                      secret=secrets.token_hex(32) if channel == "webhook" else None,
                      token=secrets.token_urlsafe(24), cell=STAFF_CELL, services=sum(SERVICE_BITS.values()),
                      lang=lang, created_at=db.iso(db.utcnow()), confirmed_at=db.iso(db.utcnow()))


def _done(conn, event_id: int, count: int) -> int:
    """Mark the event fanned out with its number of deliveries."""
    sql.run(conn, _fan().done, deliveries=count, id=event_id)
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
    # One town at a time: one statement whatever the number of towns (a subscription has one town).
    deliver = _fan().deliver_town
    return sum(sql.run(conn, deliver, event_id=event_id, due_at=now_ts, town=slug, mask=mask).rowcount
               for slug in slugs)


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
    rows = sql.run(conn, _fan().points, mask=mask, south=miny, north=maxy, west=minx, east=maxx).fetchall()
    if not rows:
        return 0
    ids = np.array([r[0] for r in rows])
    inside = shapely.intersects_xy(where, np.array([r[2] for r in rows]), np.array([r[1] for r in rows]))
    hits = ids[inside].tolist()
    return _deliver(conn, event_id, hits, now_ts)


def folded_updates(conn, event_id: int) -> list[dict]:
    """Return the updates folded into an event, oldest first (listed in its message)."""
    rows = sql.run(conn, _fan().folded, id=event_id).fetchall()
    return [json.loads(r[0])["update"] for r in rows if json.loads(r[0]).get("update")]


def _deliver(conn, event_id: int, subscription_ids: list[int], due_at: float) -> int:
    """Insert a delivery of the event to each subscription not already given one; return how many were new."""
    if not subscription_ids:
        return 0
    text, literals = _fan().deliver.sql(sql.dialect_of(conn))
    rows = [{**literals, "event_id": event_id, "subscription_id": i, "due_at": due_at}
            for i in subscription_ids]
    # The driver's own executemany: both drivers count the rows of every run together (sqlite3, psycopg 3.1+).
    cursor = conn.cursor()
    try:
        cursor.executemany(text, rows)
        return cursor.rowcount
    finally:
        cursor.close()


@sql.collection
def _fan() -> SimpleNamespace:
    """Return the statements of the periodic check and the fan-out, on every engine (``statements``)."""
    o, i, d = sql.table("outbox"), sql.table("incidents"), sql.table("deliveries")
    s = sql.table("subscriptions")
    value = sa.bindparam
    pending = o.c.state == sql.const("pending")
    wanted = s.c.services.bitwise_and(value("mask")) != 0
    confirmed = s.c.confirmed_at.is_not(None)
    earlier_updates = sa.and_(o.c.incident_id == value("incident_id"), o.c.id < value("id"), pending,
                              o.c.kind == sql.const("updated"))
    earlier = o.alias("earlier")
    delivery = ["event_id", "subscription_id", "due_at"]

    def deliver_from(where):
        return sql.Statement(sql.insert_ignoring(d, columns=delivery, select=sa.select(
            value("event_id"), s.c.id, value("due_at")).where(where)))

    return SimpleNamespace(
        open_incidents=sql.Statement(sa.select(i.c.id).where(
            i.c.resolved_at.is_(None), i.c.started_at <= value("now"),
            sa.or_(i.c.kind != sql.const("maintenance"), i.c.scheduled_end > value("now")))),
        insert_once=sql.Statement(sql.insert_ignoring(o, {c: value(c) for c in (
            "kind", "incident_id", "service", "payload", "created_at", "due_at")}, returning=[o.c.id])),
        due=sql.Statement(sa.select(o.c.id).where(
            pending, o.c.due_at <= value("now"),
            sa.or_(o.c.kind != sql.const("updated"), o.c.created_at + value("fold") <= value("now")))
            .order_by(o.c.id)),
        event=sql.Statement(sa.select(o).where(o.c.id == value("id"), pending)),
        deliver_confirm=deliver_from(s.c.id == value("subscription_id")),
        later=sql.Statement(sa.select(o.c.id).where(
            o.c.incident_id == value("incident_id"), o.c.id > value("id"), pending,
            o.c.kind.in_([sql.const("updated"), sql.const("resolved")])).order_by(o.c.id.desc()).limit(1)),
        fold=sql.Statement(sa.update(o).where(o.c.id == value("id")).values(
            state=sql.const("folded"), folded_into=value("into"))),
        refold=sql.Statement(sa.update(o).where(o.c.folded_into == value("id")).values(
            folded_into=value("into"))),
        refold_earlier=sql.Statement(sa.update(o).where(o.c.folded_into.in_(
            sa.select(earlier.c.id).where(
                earlier.c.incident_id == value("incident_id"), earlier.c.id < value("id"),
                earlier.c.state == sql.const("pending"), earlier.c.kind == sql.const("updated"))))
            .values(folded_into=value("id"))),
        fold_earlier=sql.Statement(sa.update(o).where(earlier_updates).values(
            state=sql.const("folded"), folded_into=value("id"))),
        payload=sql.Statement(sa.update(o).where(o.c.id == value("id")).values(payload=value("payload"))),
        deliver=sql.Statement(sql.insert_ignoring(d, {c: value(c) for c in delivery})),
        staff=sql.Statement(sa.select(s.c.id).where(
            sql.truthy(s.c.staff), s.c.channel == value("channel"), s.c.address == value("address"))),
        new_staff=sql.Statement(sa.insert(s).values({**{c: value(c) for c in (
            "channel", "address", "secret", "token", "cell", "services", "lang", "created_at",
            "confirmed_at")}, "staff": sql.const(1)}).returning(s.c.id)),
        done=sql.Statement(sa.update(o).where(o.c.id == value("id")).values(
            state=sql.const("done"), deliveries=value("deliveries"))),
        deliver_town=deliver_from(sa.and_(s.c.town == value("town"), confirmed, wanted)),
        points=sql.Statement(sa.select(s.c.id, s.c.lat, s.c.lon).where(
            s.c.cell.is_not(None), confirmed, wanted, s.c.lat.between(value("south"), value("north")),
            s.c.lon.between(value("west"), value("east")))),
        folded=sql.Statement(sa.select(o.c.payload).where(o.c.folded_into == value("id")).order_by(o.c.id)),
    )
