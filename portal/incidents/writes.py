"""Incident writes: what staff scripts (and the demo build) record, with their checks and audit rows.

What an incident is and what it affects is described in ``portal.incidents.records``.
Every write validates everything before touching the database and runs in one
``db.writing`` transaction with an ``audit`` row; a refusal raises
``IncidentError`` naming the bad value and leaves the database as it was. ``target`` is
the database: an SQLite file, or a ``postgresql://`` URL (the statements run on either).

What a write accepts (texts in two languages, services, towns, areas, times) is checked by
``portal.incidents.checks``. The reads pages, the API, feeds and scripts ask are
``portal.incidents.reads``; the shipped demo incidents are written by ``portal.incidents.demo``.
"""
from __future__ import annotations

from types import SimpleNamespace

import shapely
import sqlalchemy as sa

from portal.data import audit, db
from portal.data import statements as sql
from portal.incidents import checks, language
from portal.incidents.records import (  # noqa: F401 -- the vocabulary is part of this module's interface
    KINDS,
    MAINTENANCE_STATUSES,
    SERVICES,
    STATUSES,
    IncidentError,
    Record,
    check_service,
    load_records,
)
from portal.listening import outbox

# --- writes -----------------------------------------------------------------


def open_incident(target, *, title, services, towns=(), area=None, kind="outage", at=None, eta=None,
                  message=None, cause=None, author, now=None, **english) -> int:
    """Open an outage or degraded-service incident; return its id.

    ``title``, ``message``, ``cause`` and ``where`` (the place in words) are the Russian texts (a
    text without a Cyrillic letter is English); ``title_en``, ``message_en``, ``cause_en`` and
    ``where_en`` the English ones (``ENGLISH``).
    """
    with db.writing(target) as conn:
        incident_id = _open(conn, title=title, services=services, towns=towns, area=area, kind=kind, at=at,
                            eta=eta, message=message, cause=cause, author=author, now=now or db.utcnow(),
                            **english)
        outbox.incident_changed(conn, incident_id)
        return incident_id


def update_incident(target, incident_id, *, status, message, at=None, eta=None, cause=None, author,
                    now=None, message_en=None, cause_en=None) -> None:
    """Add a public update (status, message, optional new ETA or cause) to an incident."""
    with db.writing(target) as conn:
        _update(conn, incident_id, status=status, message=message, at=at, eta=eta, cause=cause,
                author=author, now=now or db.utcnow(), message_en=message_en, cause_en=cause_en)
        outbox.incident_changed(conn, incident_id)


def resolve_incident(target, incident_id, *, message, at=None, author, now=None, message_en=None) -> None:
    """Resolve an incident (or end a maintenance early) with a closing message."""
    with db.writing(target) as conn:
        _resolve(conn, incident_id, message=message, at=at, author=author, now=now or db.utcnow(),
                 message_en=message_en)
        outbox.incident_changed(conn, incident_id)


def schedule_maintenance(target, *, title, services, towns=(), area=None, start, end, message=None,
                         author, now=None, **english) -> int:
    """Announce a maintenance window; return its id (texts as ``open_incident`` takes them)."""
    with db.writing(target) as conn:
        incident_id = _schedule(conn, title=title, services=services, towns=towns, area=area, start=start,
                                end=end, message=message, author=author, now=now or db.utcnow(), **english)
        outbox.incident_changed(conn, incident_id)
        return incident_id


def edit_incident(target, incident_id, *, title=None, message=None, update=None, cause=None, author,
                  now=None, **english) -> dict:
    """Correct a published title, an update's message (default: the latest) or the cause; return the changes.

    The public timeline keeps its times and statuses; the audit log keeps the old and the new text.
    """
    with db.writing(target) as conn:
        return _edit(conn, incident_id, title=title, message=message, update=update, cause=cause,
                     author=author, now=now or db.utcnow(), **english)


def cancel_maintenance(target, incident_id, *, message, author, now=None, message_en=None) -> None:
    """Call off a maintenance window that has not begun, with a public message saying so."""
    with db.writing(target) as conn:
        _cancel(conn, incident_id, message=message, author=author, now=now or db.utcnow(),
                message_en=message_en)
        outbox.incident_changed(conn, incident_id)


def _open(conn, *, title, services, towns, area, kind, at, eta, message, cause, author, now, title_en=None,
          message_en=None, cause_en=None, where=None, where_en=None) -> int:
    """Validate and insert an outage or degraded incident with its first update."""
    title, author = checks.texts("title", title, title_en, required=True), checks.text("author", author)
    cause, place = checks.texts("cause", cause, cause_en), checks.texts("where", where, where_en)
    services = checks.services(services)
    if kind not in ("outage", "degraded"):
        hint = "; use schedule_maintenance for maintenance" if kind == "maintenance" else ""
        raise IncidentError(f"unknown kind {kind!r}; expected one of outage, degraded{hint}")
    slugs, area = checks.towns(conn, towns), checks.area(area)
    if not slugs and area is None:
        raise IncidentError("no towns and no area given; name at least one town or an area polygon")
    at = checks.past("at", at, now)
    eta = checks.time("eta", eta)
    if eta is not None and eta < at:
        raise IncidentError(f"eta {db.iso(eta)} is before the start {db.iso(at)}")
    message = checks.message(message, message_en, title)
    incident_id = _insert(conn, title=title, kind=kind, cause=cause, started=at, end=None, services=services,
                          towns=slugs, area=area, place=place, author=author, now=now)
    _add_update(conn, incident_id, at, "investigating", message, eta, author, now)
    _audit(conn, now, author, "open", incident_id, {
        **checks.said("title", title), "kind": kind, "services": services, "towns": slugs, "at": db.iso(at),
        "eta": db.iso(eta), **checks.said("cause", cause), **checks.said("message", message),
        **checks.said("where", place),
        "area": checks.wkt(area)})
    return incident_id


def _update(conn, incident_id, *, status, message, at, eta, cause, author, now, message_en=None,
            cause_en=None) -> None:
    """Validate and add one update (a status 'resolved' resolves)."""
    rec = checks.record(conn, incident_id)
    author = checks.text("author", author)
    message = checks.texts("message", message, message_en, multiline=True, required=True)
    if rec.kind != "maintenance" and status == "resolved":
        if eta is not None:
            raise IncidentError(f"eta {db.iso(checks.time('eta', eta))} given with status 'resolved'; "
                                "a resolved incident has no ETA")
        return _resolve(conn, incident_id, message=message, at=at, author=author, now=now, cause=cause,
                        cause_en=cause_en)
    at = checks.after_timeline(rec, checks.past("at", at, now), now)
    eta = checks.time("eta", eta)
    if rec.kind == "maintenance":
        derived = rec.status(at)
        if status != derived:
            raise IncidentError(
                f"status {status!r} cannot be set on maintenance #{rec.id}: its status is derived from "
                f"its window ({db.iso(rec.started_at)} to {db.iso(rec.scheduled_end)}); at {db.iso(at)} "
                f"it is {derived!r}")
        if eta is not None:
            raise IncidentError("eta given for a maintenance; a maintenance has a window, not an ETA")
    elif status not in STATUSES:
        raise IncidentError(f"unknown status {status!r} for {rec.kind} #{rec.id}; expected one of "
                            f"{', '.join(STATUSES)}")
    if eta is not None and eta < rec.started_at:
        raise IncidentError(f"eta {db.iso(eta)} is before the start {db.iso(rec.started_at)} of #{rec.id}")
    cause = checks.texts("cause", cause, cause_en)
    if cause is not None:
        _set_cause(conn, rec.id, cause)
    _add_update(conn, rec.id, at, status, message, eta, author, now)
    _audit(conn, now, author, "update", rec.id, {
        "status": status, **checks.said("message", message), "at": db.iso(at), "eta": db.iso(eta),
        **checks.said("cause", cause)})


def _resolve(conn, incident_id, *, message, at, author, now, cause=None, message_en=None,
             cause_en=None) -> None:
    """Validate and close an incident or maintenance (``message`` may be texts already checked)."""
    rec = checks.record(conn, incident_id)
    author = checks.text("author", author)
    if not isinstance(message, dict):
        message = checks.texts("message", message, message_en, multiline=True, required=True)
    at = checks.after_timeline(rec, checks.past("at", at, now), now)
    closing = "completed" if rec.kind == "maintenance" else "resolved"
    if rec.kind == "maintenance" and at < rec.started_at:
        raise IncidentError(f"maintenance #{rec.id} starts at {db.iso(rec.started_at)}; it cannot be "
                            f"completed at {db.iso(at)} before it began")
    cause = checks.texts("cause", cause, cause_en)
    sql.run(conn, _q().resolved, resolved_at=db.iso(at), id=rec.id)
    if cause is not None:
        _set_cause(conn, rec.id, cause)
    _add_update(conn, rec.id, at, closing, message, None, author, now)
    _audit(conn, now, author, "resolve", rec.id, {**checks.said("message", message), "at": db.iso(at),
                                                  **checks.said("cause", cause)})


def _schedule(conn, *, title, services, towns, area, start, end, message, author, now, title_en=None,
              message_en=None, where=None, where_en=None) -> int:
    """Validate and insert a maintenance window with its announcement."""
    title, author = checks.texts("title", title, title_en, required=True), checks.text("author", author)
    place = checks.texts("where", where, where_en)
    services = checks.services(services)
    slugs, area = checks.towns(conn, towns), checks.area(area)
    if not slugs and area is None:
        raise IncidentError("no towns and no area given; name at least one town or an area polygon")
    start, end = checks.time("start", start), checks.time("end", end)
    if start is None or end is None:
        raise IncidentError("a maintenance needs both a start and an end")
    if end <= start:
        raise IncidentError(f"end {db.iso(end)} is not after start {db.iso(start)}; a maintenance must "
                            "end after it starts")
    message = checks.message(message, message_en, title)
    incident_id = _insert(conn, title=title, kind="maintenance", cause=None, started=start, end=end,
                          services=services, towns=slugs, area=area, place=place, author=author, now=now)
    # The announcement is stamped when it is made, or at the start when recording a past window.
    _add_update(conn, incident_id, min(now, start), "scheduled", message, None, author, now)
    _audit(conn, now, author, "maintenance", incident_id, {
        **checks.said("title", title), "services": services, "towns": slugs, "start": db.iso(start),
        "end": db.iso(end), **checks.said("message", message), **checks.said("where", place),
        "area": checks.wkt(area)})
    return incident_id


def _edit(conn, incident_id, *, title, message, update, cause, author, now, title_en=None, message_en=None,
          cause_en=None, where=None, where_en=None) -> dict:
    """Validate and apply corrections to an incident's published text (either language, or the place)."""
    rec = checks.record(conn, incident_id)
    author = checks.text("author", author)
    if all(v is None for v in (title, message, cause, title_en, message_en, cause_en, where, where_en)):
        raise IncidentError("nothing to correct; give a new title, a new message or a new cause")
    if update is not None and message is None and message_en is None:
        raise IncidentError(f"update {update!r} given without a message; give the corrected message too")
    changes: dict = {}
    row = sql.run(conn, _q().texts, id=rec.id).fetchone()
    for name, text, english in (("title", title, title_en), ("cause", cause, cause_en),
                                ("where", where, where_en)):
        column = "place" if name == "where" else name
        _correct(conn, "incidents", rec.id, column, name, row, text, english, changes, f"of #{rec.id}")
    if message is not None or message_en is not None:
        rows = stored_updates(conn, rec.id)
        number = len(rows) if update is None else update
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(rows):
            raise IncidentError(f"update {number!r} is not in the timeline of #{rec.id}; give a number from 1"
                                " to"
                                f" {len(rows)} (as `show` numbers them)")
        found: dict = {}
        _correct(conn, "incident_updates", rows[number - 1]["id"], "message", "message", rows[number - 1],
                 message, message_en, found, f"of update {number} of #{rec.id}", multiline=True)
        changes.update({key: {"update": number, **change} for key, change in found.items()})
    _audit(conn, now, author, "edit", rec.id, changes)
    return changes


def _correct(conn, table, row_id, column, name, row, text, english, changes, whose, multiline=False) -> None:
    """Replace a stored text (its first column) and/or its English column; note each change in ``changes``.

    Refuses a text already stored: a correction that changes nothing is a mistake in the command.
    """
    if text is None and english is None:
        return
    if text is not None:
        text = checks.text(name, text, multiline)
    if english is not None:
        if text is not None and language.text_language(text) == "en":
            raise IncidentError(f"{name} {text!r} has no Cyrillic letter, so it is taken as English, and"
                                f" {name}-en gives English too; give the Russian text as {name} and the"
                                f" English one as {name}-en")
        english = checks.texts(name, None, english, multiline=multiline)["en"]
    word = "the title" if name == "title" else f"the {name}" if name != "message" else "the text"
    for key, value, col in ((name, text, column), (f"{name}_en", english, f"{column}_en")):
        if value is None:
            continue
        if value == row[col]:
            raise IncidentError(f"{name}{'-en' if col.endswith('_en') else ''} {value!r} is already {word}"
                                f" {whose}; give the corrected {name}")
        sql.run(conn, getattr(getattr(_q().correct, table), col), value=value, id=row_id)
        changes[key] = {"before": row[col], "after": value}


def _cancel(conn, incident_id, *, message, author, now, message_en=None) -> None:
    """Validate and call off a maintenance window before it begins."""
    rec = checks.record(conn, incident_id)
    author = checks.text("author", author)
    message = checks.texts("message", message, message_en, multiline=True, required=True)
    if rec.kind != "maintenance":
        raise IncidentError(f"#{rec.id} is an {rec.kind}, not a maintenance; only planned work can be"
                            " cancelled (resolve an outage instead)")
    if rec.cancelled:
        raise IncidentError(f"maintenance #{rec.id} was already cancelled at {db.iso(rec.resolved_at)}")
    now = now.replace(microsecond=0)
    if now >= rec.started_at:
        state = rec.status(now)
        raise IncidentError(f"maintenance #{rec.id} began at {db.iso(rec.started_at)} and is {state!r};"
                            " only a window that has not begun can be cancelled (end it early with resolve)")
    sql.run(conn, _q().resolved, resolved_at=db.iso(now), id=rec.id)
    _add_update(conn, rec.id, now, "cancelled", message, None, author, now)
    _audit(conn, now, author, "cancel", rec.id, {**checks.said("message", message),
                                                 "start": db.iso(rec.started_at),
                                                 "end": db.iso(rec.scheduled_end)})


def _insert(conn, *, title, kind, cause, started, end, services, towns, area, place, author, now) -> int:
    """Insert the incident row, its services, towns and area; return its id."""
    q = _q()
    (title, title_en), (cause, cause_en), (place, place_en) = map(checks.columns, (title, cause, place))
    incident_id = sql.scalar(conn, q.incident, title=title, title_en=title_en, kind=kind, cause=cause,
                             cause_en=cause_en, place=place, place_en=place_en, started_at=db.iso(started),
                             scheduled_end=db.iso(end), created_at=db.iso(now), author=author)
    sql.run_many(conn, q.service, [{"incident_id": incident_id, "service": s} for s in services])
    sql.run_many(conn, q.town, [{"incident_id": incident_id, "slug": s} for s in towns])
    if area is not None:
        sql.run(conn, q.area, incident_id=incident_id, geom=shapely.to_wkb(area))
    return incident_id


def _add_update(conn, incident_id, at, status, message, eta, author, now) -> None:
    """Insert one timeline entry."""
    text, english = checks.columns(message)
    sql.run(conn, _q().update, incident_id=incident_id, at=db.iso(at), status=status, message=text,
            message_en=english, eta=db.iso(eta), author=author, recorded_at=db.iso(now))


def _set_cause(conn, incident_id, cause: dict) -> None:
    """Replace the incident's cause (both languages' columns)."""
    text, english = checks.columns(cause)
    sql.run(conn, _q().cause, cause=text, cause_en=english, id=incident_id)


def stored_updates(conn, incident_id: int) -> list:
    """Return an incident's stored updates in the order ``edit_incident(update=N)`` numbers them (1 first)."""
    return sql.run(conn, _q().messages, id=incident_id).fetchall()


def _audit(conn, now, author, action, incident_id, detail) -> None:
    """Record who changed which incident, when, and how."""
    audit.record(conn, author=author, action=f"incident.{action}", subject=f"incident:{incident_id}",
                 detail=detail, at=now)


@sql.collection
def _q() -> SimpleNamespace:
    """Return the statements of the incident writes, on every engine (``portal.data.statements``)."""
    i, u = sql.table("incidents"), sql.table("incident_updates")
    value = sa.bindparam

    def insert(table, *names, **made):
        return sa.insert(sql.table(table)).values({**{c: value(c) for c in names}, **made})

    def change(table, **values):
        return sa.update(table).where(table.c.id == value("id")).values(values)

    # The texts staff correct (``_correct``): per table, per column.
    correct = SimpleNamespace(**{t.name: SimpleNamespace(**{
        c: sql.Statement(change(t, **{c: value("value")})) for name in names for c in (name, f"{name}_en")})
        for t, names in ((i, ("title", "cause", "place")), (u, ("message",)))})
    return SimpleNamespace(
        incident=sql.Statement(insert(
            "incidents", "title", "title_en", "kind", "cause", "cause_en", "place", "place_en", "started_at",
            "scheduled_end", "created_at", "author").returning(i.c.id)),
        service=sql.Statement(insert("incident_services", "incident_id", "service")),
        town=sql.Statement(insert("incident_towns", "incident_id", "slug")),
        area=sql.Statement(insert("incident_areas", "incident_id", geom=sql.geometry_in(value("geom")))),
        update=sql.Statement(insert(
            "incident_updates", "incident_id", "at", "status", "message", "message_en", "eta", "author",
            "recorded_at")),
        cause=sql.Statement(change(i, cause=value("cause"), cause_en=value("cause_en"))),
        resolved=sql.Statement(change(i, resolved_at=value("resolved_at"))),
        texts=sql.Statement(sa.select(i.c.title, i.c.title_en, i.c.cause, i.c.cause_en, i.c.place,
                                      i.c.place_en).where(i.c.id == value("id"))),
        messages=sql.Statement(sa.select(u.c.id, u.c.at, u.c.status, u.c.message, u.c.message_en)
                               .where(u.c.incident_id == value("id")).order_by(u.c.at, u.c.id)),
        correct=correct,
    )
