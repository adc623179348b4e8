"""What an incident is: the vocabulary, the stored record and what it says at a given moment.

An incident is an ``outage`` or ``degraded`` service (status investigating →
identified → monitoring → resolved, set by its updates) or a ``maintenance``
window (status scheduled → in_progress → completed, derived from the window and
never set by hand). It affects one or more services in towns (slugs) and/or
areas (polygons, WGS 84). Its current status is always derived from the stored
timeline, so the incident and the service status cannot drift apart.

Where: a point is affected when it lies inside or on the border of an incident
area, or inside or on the border of a listed town's extent. A town is affected
when it is listed, or when an incident area shares interior with its extent
(an area merely touching the town's edge does not count).

The writes (``portal.incidents.writes``) and the reads (``portal.incidents.reads``)
both work on the ``Record`` defined here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

import shapely
import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql
from portal.incidents.language import by_lang

SERVICES = ("internet", "tv", "phone")
KINDS = ("outage", "degraded", "maintenance")
STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "completed", "cancelled")


class IncidentError(ValueError):
    """Refused incident input; the message names the value and what would be right."""


def check_service(service) -> str:
    """Return ``service`` if it is one of SERVICES, else raise IncidentError naming it."""
    if service not in SERVICES:
        raise IncidentError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return service


@dataclass
class Record:
    """One stored incident with its services, towns, areas and timeline."""

    id: int
    title: str
    kind: str
    cause: str | None
    started_at: datetime
    resolved_at: datetime | None
    scheduled_end: datetime | None
    services: tuple[str, ...]
    towns: tuple[str, ...]
    areas: list = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    # When staff recorded it, and when they corrected its text (``edit``): with each update's
    # ``recorded_at`` these are the changes calendars and feeds count.
    created_at: datetime | None = None
    edits: list[datetime] = field(default_factory=list)
    # The texts per language ({"ru": ..., "en": ...}, either may be None; ``portal.incidents.language``);
    # ``title`` and ``cause`` above are the text staff gave first, as before both were kept.
    title_by_lang: dict = field(default_factory=dict)
    cause_by_lang: dict = field(default_factory=dict)
    # The affected place in words (streets, buildings), so the answer does not depend on the map.
    where_by_lang: dict = field(default_factory=dict)

    def end(self, now: datetime) -> datetime | None:
        """Return when the incident ended (None while it lasts at ``now``)."""
        end = self.resolved_at
        if self.kind == "maintenance" and end is None:
            end = self.scheduled_end
        return end if end is not None and end <= now else None

    def last_end(self) -> datetime | None:
        """Return when the incident ends whatever the clock says (None while no end is known)."""
        return self.resolved_at or (self.scheduled_end if self.kind == "maintenance" else None)

    @property
    def cancelled(self) -> bool:
        """Return whether this is a maintenance window called off before it began.

        Cancelling closes the window before its start (``cancel_maintenance``); completing one
        early is refused before its start, so nothing else gives a maintenance that shape.
        """
        return (self.kind == "maintenance" and self.resolved_at is not None
                and self.resolved_at < self.started_at)

    def status(self, now: datetime) -> str:
        """Return the public status at ``now``."""
        if self.kind == "maintenance":
            if self.cancelled and self.resolved_at <= now:
                return "cancelled"
            if now < self.started_at:
                return "scheduled"
            return "completed" if self.end(now) else "in_progress"
        if self.end(now):
            return "resolved"
        past = [u for u in self.updates if u["at"] <= now] or self.updates[:1]
        return past[-1]["status"] if past else "investigating"

    def active(self, now: datetime) -> bool:
        """Return whether the incident is ongoing or upcoming at ``now``."""
        return self.status(now) not in ("resolved", "completed", "cancelled")

    def duration_s(self, now: datetime) -> int:
        """Return how long it has lasted by ``now`` (to its end once ended; 0 before it starts)."""
        if now < self.started_at:
            return 0
        return max(0, int(((self.end(now) or now) - self.started_at).total_seconds()))

    def deadlines(self, now: datetime, hours: dict) -> dict:
        """Return per service the restoration deadline of the contract (``hours`` per service) at ``now``.

        Maintenance has none: it is announced, not restored.
        """
        if self.kind == "maintenance":
            return {}
        end = self.end(now)
        found = {}
        for service in self.services:
            if service in hours:
                due = self.started_at + timedelta(hours=hours[service])
                found[service] = {
                    "hours": hours[service], "due_at": db.iso(due), "missed": (end or now) > due,
                    # Seconds left (negative: overdue by) while the incident lasts; None once it ended.
                    "remaining_s": None if end else int((due - now).total_seconds()),
                }
        return found

    def timeline(self, now: datetime) -> list[dict]:
        """Return the public updates made by ``now``, oldest first, with a maintenance window's start, end."""
        items = [{"at": u["at"], "status": u["status"], "message": u["message"],
                  "message_by_lang": u.get("message_by_lang") or by_lang(u["message"], None)}
                 for u in self.updates if u["at"] <= now]
        if self.kind == "maintenance" and not self.cancelled:  # a cancelled window never began nor ended
            if now >= self.started_at:
                items.append({"at": self.started_at, "status": "in_progress",
                              "message": "The maintenance window began.",
                              "message_by_lang": {"ru": None, "en": "The maintenance window began."}})
            end = self.end(now)
            if end and not any(i["status"] == "completed" for i in items):
                items.append({"at": end, "status": "completed", "message": "The maintenance window ended.",
                              "message_by_lang": {"ru": None, "en": "The maintenance window ended."}})
        rank = {s: n for n, s in enumerate(MAINTENANCE_STATUSES)}
        items.sort(key=lambda i: (i["at"], rank.get(i["status"], 0)))
        return items

    def changes(self) -> list[datetime]:
        """Return when staff changed the incident, oldest first: recorded, each update, each text edit."""
        found = [self.created_at or self.started_at]
        found += [u.get("recorded_at") or u["at"] for u in self.updates]
        return sorted(found + list(self.edits))

    def changed_at(self) -> datetime:
        """Return the incident's last change by staff (iCalendar's DTSTAMP, Statuspage's updated_at)."""
        return self.changes()[-1]

    def sequence(self) -> int:
        """Return how many times the incident changed after it was announced (iCalendar's SEQUENCE).

        The announcement (the first update) is revision 0; every later update, a cancellation
        among them, and every text correction bumps it.
        """
        return max(0, len(self.updates) - 1) + len(self.edits)

    def moments(self) -> list[datetime]:
        """Return every moment the incident changed what it says: staff changes, a window's start and end."""
        found = self.changes() + [u["at"] for u in self.updates]  # a backdated update says when, too
        if self.kind == "maintenance" and not self.cancelled:
            found += [self.started_at, self.last_end()]
        return sorted(found)

    def last_change(self, now: datetime) -> datetime:
        """Return the latest moment by ``now`` when the incident changed what it says (see ``moments``)."""
        past = [t for t in self.moments() if t <= now]
        return past[-1] if past else self.moments()[0]

    def affects_town(self, slug: str, extent) -> bool:
        """Return whether the town is listed or an area shares interior with its extent."""
        if slug in self.towns:
            return True
        return extent is not None and any(shapely.relate_pattern(a, extent, "T********") for a in self.areas)

    def affects_point(self, point, extents, town_slug: str | None = None) -> bool:
        """Return whether the point is in or on an area or a listed town (``extents``: slug → geometry)."""
        if town_slug is not None and town_slug in self.towns:
            return True
        shapes = self.areas + [extents.get(s) for s in self.towns]
        return any(g is not None and g.intersects(point) for g in shapes)


def load_records(conn, ids=None) -> list[Record]:
    """Return stored incidents (all, or those ids) with their timelines, oldest first."""
    q = _q()
    if ids is None:
        rows = sql.run(conn, q.incidents).fetchall()
        parts = [[sql.run(conn, statement).fetchall() for statement in vars(q.all_parts).values()]]
    else:
        # One incident at a time: the statements stay the same whatever the number of ids.
        rows, parts = [], []
        for incident_id in dict.fromkeys(int(i) for i in ids):
            found = sql.run(conn, q.incident, id=incident_id).fetchall()
            if found:
                rows += found
                parts.append([sql.run(conn, statement, id=incident_id).fetchall()
                              for statement in vars(q.parts).values()])
        rows.sort(key=lambda r: (r["started_at"], r["id"]))
    recs = {r["id"]: Record(
        id=r["id"], title=r["title"], kind=r["kind"], cause=r["cause"],
        started_at=db.parse_iso(r["started_at"]), resolved_at=db.parse_iso(r["resolved_at"]),
        scheduled_end=db.parse_iso(r["scheduled_end"]), services=(), towns=(),
        created_at=db.parse_iso(r["created_at"]), title_by_lang=by_lang(r["title"], r["title_en"]),
        cause_by_lang=by_lang(r["cause"], r["cause_en"]), where_by_lang=by_lang(r["place"], r["place_en"]),
    ) for r in rows}
    if not recs:
        return []
    for services, towns, areas, updates in parts:
        for r in services:
            recs[r[0]].services += (r[1],)
        for r in towns:
            recs[r[0]].towns += (r[1],)
        for r in areas:
            recs[r[0]].areas.append(shapely.from_wkb(r[1]))
        for r in updates:
            recs[r[0]].updates.append({"at": db.parse_iso(r[1]), "status": r[2], "message": r[3],
                                       "eta": db.parse_iso(r[4]), "recorded_at": db.parse_iso(r[5]),
                                       "message_by_lang": by_lang(r[3], r[6])})
    # Text corrections live only in the audit log (``writes.edit_incident``).
    for r in sql.run(conn, q.edits):
        rec = recs.get(_subject_id(r[0]))
        if rec is not None:
            rec.edits.append(db.parse_iso(r[1]))
    for rec in recs.values():
        rec.services = tuple(s for s in SERVICES if s in rec.services)
    return list(recs.values())


@sql.collection
def _q() -> SimpleNamespace:
    """Return the statements that read incidents, on every engine (``portal.data.statements``).

    Each part of an incident (services, towns, areas, updates) is read for all incidents or for one.
    """
    i, s, t = sql.table("incidents"), sql.table("incident_services"), sql.table("incident_towns")
    a, u, audit = sql.table("incident_areas"), sql.table("incident_updates"), sql.table("audit")
    parts = {
        "services": sa.select(s.c.incident_id, s.c.service),
        "towns": sa.select(t.c.incident_id, t.c.slug).order_by(t.c.slug),
        "areas": sa.select(a.c.incident_id, sql.geometry_out(a.c.geom)).order_by(a.c.id),
        "updates": sa.select(u.c.incident_id, u.c.at, u.c.status, u.c.message, u.c.eta, u.c.recorded_at,
                             u.c.message_en).order_by(u.c.at, u.c.id),
    }
    one = sa.bindparam("id")
    return SimpleNamespace(
        incidents=sql.Statement(sa.select(i).order_by(i.c.started_at, i.c.id)),
        incident=sql.Statement(sa.select(i).where(i.c.id == one)),
        # In this order: services, towns, areas, updates (``load_records``).
        all_parts=SimpleNamespace(**{name: sql.Statement(p) for name, p in parts.items()}),
        parts=SimpleNamespace(**{name: sql.Statement(p.where(p.selected_columns[0] == one))
                                 for name, p in parts.items()}),
        edits=sql.Statement(sa.select(audit.c.subject, audit.c.at).where(
            audit.c.action == sql.const("incident.edit")).order_by(audit.c.at, audit.c.id)),
    )


def _subject_id(subject: str | None) -> int | None:
    """Return the incident id of an audit row's subject ('incident:12'), else None."""
    prefix, _, number = (subject or "").partition(":")
    return int(number) if prefix == "incident" and number.isdigit() else None
