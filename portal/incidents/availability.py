"""What incidents mean for the service: incident pages, what is down where, uptime strips.

Everything here is derived from the stored incidents at a given ``now``; no
status is stored twice.

Availability rule (published on the pages):

- Downtime of a service in a town is the time during which an *outage* of that
  service was declared for the whole town (the town is listed on the incident).
  Overlapping outages are counted once (the union of their intervals), from
  the start to the resolution, or to now while the outage lasts.
- An outage of part of a town (an area: a building, a street), and degraded
  service, do not count as downtime: they mark the day *partial*.
- Planned maintenance does not count as downtime and does not colour the day;
  its time is reported as ``maintenance_s``.
- A day is a calendar day in the region's time zone. Its status is ``down`` when
  it had any downtime, ``partial`` when it had a partial outage or degraded
  service, ``ok`` otherwise, and ``no_data`` when it lies wholly before the
  date monitoring began (``since``).
- ``percent`` = 100 × (1 − downtime ÷ period), where the period is the last
  N × 24 hours up to now (from ``since`` if that is later).
"""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from portal.data import db
from portal.incidents.index import affected_towns, for_connection, live_towns, records, town_candidates
from portal.incidents.writes import (
    DEADLINE_HOURS,
    MAINTENANCE_STATUSES,
    SERVICES,
    IncidentError,
    Record,
    geometry_of,
)

AVAILABILITY_RULE = __doc__[__doc__.index("Availability rule"):].strip()
TIMEZONE = "Europe/Moscow"
SEVERITY = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")


def present(rec: Record, now: datetime, *, deadlines=None, towns_by_slug=None, geometry=False) -> dict:
    """Return the public dict of an incident as it stands at ``now`` (contract fields and more)."""
    deadlines = DEADLINE_HOURS if deadlines is None else deadlines
    status, end = rec.status(now), rec.end(now)
    active, maintenance = rec.active(now), rec.kind == "maintenance"
    etas = [{"at": db.iso(u["at"]), "eta": db.iso(u["eta"])} for u in rec.updates if u["eta"]]
    if maintenance:
        eta = db.iso(rec.resolved_at or rec.scheduled_end) if active else None
    else:
        eta = etas[-1]["eta"] if active and etas else None
    deadline = {}
    for service in () if maintenance else rec.services:
        if service in deadlines:
            due = rec.started_at + timedelta(hours=deadlines[service])
            deadline[service] = {
                "hours": deadlines[service], "due_at": db.iso(due), "missed": (end or now) > due,
                # Seconds left (negative: overdue by) while the incident lasts; None once it ended.
                "remaining_s": None if end else int((due - now).total_seconds()),
            }
    updates = _timeline(rec, now)
    duration = 0 if status == "scheduled" else max(0, int(((end or now) - rec.started_at).total_seconds()))
    out = {
        "id": rec.id, "title": rec.title, "kind": rec.kind, "status": status,
        "services": list(rec.services), "started_at": db.iso(rec.started_at),
        "resolved_at": db.iso(end), "eta": eta, "towns": list(rec.towns),
        "has_area": bool(rec.areas), "url": f"/incidents/{rec.id}", "cause": rec.cause, "active": active,
        "duration_s": duration,
        "deadline": deadline, "eta_history": etas, "updates": updates,
        "updated_at": updates[-1]["at"] if updates else db.iso(rec.started_at),
        "scheduled_start": db.iso(rec.started_at) if maintenance else None,
        "scheduled_end": db.iso(rec.scheduled_end) if maintenance else None,
    }
    if geometry:
        shapes = rec.areas + [geometry_of(towns_by_slug[s]) for s in rec.towns if s in towns_by_slug]
        union = shapely.union_all(shapes) if shapes else None
        out["geometry"] = None if union is None or union.is_empty else json.loads(shapely.to_geojson(union))
        out["affected_towns"] = sorted(affected_towns(rec, towns_by_slug))
    return out


def _timeline(rec: Record, now: datetime) -> list[dict]:
    """Return the public updates, oldest first, with a maintenance window's start and end."""
    items = [{"at": u["at"], "status": u["status"], "message": u["message"]}
             for u in rec.updates if u["at"] <= now]
    if rec.kind == "maintenance" and not rec.cancelled:  # a cancelled window never began nor ended
        if now >= rec.started_at:
            items.append({"at": rec.started_at, "status": "in_progress",
                          "message": "The maintenance window began."})
        end = rec.end(now)
        if end and not any(i["status"] == "completed" for i in items):
            items.append({"at": end, "status": "completed", "message": "The maintenance window ended."})
    rank = {s: n for n, s in enumerate(MAINTENANCE_STATUSES)}
    items.sort(key=lambda i: (i["at"], rank.get(i["status"], 0)))
    return [{**i, "at": db.iso(i["at"])} for i in items]


def _order(rec: Record, now: datetime):
    """Ongoing first (latest start first), then upcoming (soonest first), then history (latest end first)."""
    if not rec.active(now):
        return (2, -rec.end(now).timestamp(), -rec.id)
    if rec.started_at > now:
        return (1, rec.started_at.timestamp(), rec.id)
    return (0, -rec.started_at.timestamp(), -rec.id)


def get_incident(conn, incident_id, now, *, deadlines=None, towns_by_slug=None) -> dict | None:
    """Return one incident with its timeline, affected geometry and towns, or None."""
    try:
        found = records(conn, [int(incident_id)])
    except (TypeError, ValueError, OverflowError):
        return None
    return present(found[0], now, deadlines=deadlines, geometry=True,
                   towns_by_slug=live_towns(conn, towns_by_slug)) if found else None


def list_incidents(conn, now, status="active", town=None, service=None, *, deadlines=None,
                   towns_by_slug=None) -> list[dict]:
    """Return incidents by ``status`` (active, resolved, all), optionally for one town or service."""
    if status not in ("active", "resolved", "all"):
        raise IncidentError(f"unknown status {status!r}; expected one of active, resolved, all")
    if service is not None and service not in SERVICES:
        raise IncidentError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    entry = for_connection(conn)
    if town is not None:
        extent = geometry_of(live_towns(conn, towns_by_slug, entry).get(town))
        recs = [entry.recs[i] for i in town_candidates(entry, town, extent)]
        recs = [r for r in recs if r.affects_town(town, extent)]
    elif status == "active":
        recs = [entry.recs[i] for i in np.flatnonzero(entry.active(now)).tolist()]
    else:
        recs = entry.recs
    if service is not None:
        recs = [r for r in recs if service in r.services]
    if status != "all":
        recs = [r for r in recs if r.active(now) == (status == "active")]
    return [present(r, now, deadlines=deadlines) for r in sorted(recs, key=lambda r: _order(r, now))]


def affecting_point(conn, lat, lon, now, town_slug=None, *, towns_by_slug=None, deadlines=None) -> list[dict]:
    """Return the active incidents and maintenance whose area or listed towns cover the point."""
    entry = for_connection(conn)
    towns = live_towns(conn, towns_by_slug, entry)
    lon, lat = float(lon), float(lat)
    # Candidates: records listing the point's town, whose area meets the point, or listing a
    # town whose extent meets it; the exact test below is the one a full scan would make.
    if towns:
        still_open = entry.town_index(towns).open_areas(now)
        cand = still_open.records_at(lon, lat)
        cand.update(still_open.listing.get(town_slug, ()))
    else:
        cand = set(entry.by_town.get(town_slug, ())) if town_slug is not None else set()
        if len(entry.area_geoms):
            cand.update(entry.area_owner[entry.area_tree.query(shapely.Point(lon, lat),
                                                               predicate="intersects")].tolist())
    if not cand:
        return []
    point = shapely.Point(lon, lat)
    stamp = now.timestamp()
    recs = [entry.recs[i] for i in sorted(cand) if entry.end_ts[i] > stamp]
    recs = [r for r in recs if r.active(now) and r.affects_point(point, towns, town_slug)]
    return [present(r, now, deadlines=deadlines) for r in sorted(recs, key=lambda r: _order(r, now))]


def affecting_town(conn, slug, now, *, towns_by_slug=None, deadlines=None) -> list[dict]:
    """Return the active incidents and maintenance that list the town or overlap its extent."""
    return list_incidents(conn, now, "active", town=slug, towns_by_slug=towns_by_slug, deadlines=deadlines)


def status_for(conn, now, lat=None, lon=None, town=None, *, towns_by_slug=None, deadlines=None) -> dict:
    """Return whether a place (a point, a town, or with neither the whole region) is down now."""
    if lat is not None and lon is not None:
        found = affecting_point(conn, lat, lon, now, town, towns_by_slug=towns_by_slug, deadlines=deadlines)
    elif town is not None:
        found = affecting_town(conn, town, now, towns_by_slug=towns_by_slug, deadlines=deadlines)
    else:
        found = list_incidents(conn, now, "active", deadlines=deadlines)
    incidents = [i for i in found if i["kind"] != "maintenance"]
    maintenance = [i for i in found if i["kind"] == "maintenance"]
    down = bool(incidents) or any(m["status"] == "in_progress" for m in maintenance)
    return {"down": down, "incidents": incidents, "maintenance": maintenance}


def summary(conn, now, *, towns_by_slug=None, deadlines=None) -> dict:
    """Return each service's status derived from the active incidents, and those incidents.

    An outage is a ``major_outage`` when the outages of a service together affect at least half
    of the towns, else a ``partial_outage``; degraded service is ``degraded_performance``; a
    maintenance in progress is ``under_maintenance``; the worst applies.
    """
    entry = for_connection(conn)
    towns = live_towns(conn, towns_by_slug, entry)
    recs = [entry.recs[i] for i in np.flatnonzero(entry.active(now)).tolist()]
    recs = [r for r in recs if r.active(now)]
    affects = entry.town_index(towns).affected_by if towns else (lambda r: frozenset())
    services = {}
    for service in SERVICES:
        mine = [r for r in recs if service in r.services and r.status(now) != "scheduled"]
        hit = set().union(*(affects(r) for r in mine if r.kind == "outage"))
        found = ["operational"]
        for r in mine:
            if r.kind == "outage":
                found.append("major_outage" if towns and len(hit) * 2 >= len(towns) else "partial_outage")
            else:
                found.append("degraded_performance" if r.kind == "degraded" else "under_maintenance")
        affected = set().union(*(affects(r) for r in mine if r.kind != "maintenance"))
        services[service] = {"status": max(found, key=SEVERITY.index), "incidents": [r.id for r in mine],
                             "towns": sorted(affected)}
    worst = max((v["status"] for v in services.values()), key=SEVERITY.index)
    active = [present(r, now, deadlines=deadlines) for r in sorted(recs, key=lambda r: _order(r, now))]
    return {"status": worst, "services": services, "incidents": active}


def availability(conn, slug, service, now, days=90, *, tz=TIMEZONE, since=None, towns_by_slug=None) -> dict:
    """Return a town's availability of one service over the last ``days`` local days (see the rule)."""
    if service not in SERVICES:
        raise IncidentError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    if int(days) < 1:
        raise IncidentError(f"days {days!r} must be at least 1")
    zone = ZoneInfo(tz)
    entry = for_connection(conn)
    extent = geometry_of(live_towns(conn, towns_by_slug, entry).get(slug))
    down, partial, maintenance = [], [], []
    for r in (entry.recs[i] for i in town_candidates(entry, slug, extent)):
        if (service not in r.services or r.started_at >= now or r.cancelled
                or not r.affects_town(slug, extent)):
            continue
        span = (r.started_at, r.end(now) or now)
        if r.kind == "maintenance":
            maintenance.append(span)
        elif r.kind == "outage" and slug in r.towns:
            down.append(span)
        else:
            partial.append(span)
    down, partial, maintenance = _merge(down), _merge(down + partial), _merge(maintenance)
    today = now.astimezone(zone).date()
    strip = []
    for n in range(int(days) - 1, -1, -1):
        date = today - timedelta(days=n)
        lo = datetime.combine(date, time(0), zone)
        hi = min(datetime.combine(date + timedelta(days=1), time(0), zone), now)
        if since is not None and hi <= since:
            strip.append({"date": date.isoformat(), "down_s": 0, "partial_s": 0, "maintenance_s": 0,
                          "status": "no_data"})
            continue
        lo = max(lo, since) if since is not None else lo
        down_s = _measure(down, lo, hi)
        partial_s = _measure(partial, lo, hi) - down_s
        status = "down" if down_s else "partial" if partial_s else "ok"
        strip.append({"date": date.isoformat(), "down_s": down_s, "partial_s": partial_s,
                      "maintenance_s": _measure(maintenance, lo, hi), "status": status})
    start = now - timedelta(days=int(days))
    start = max(start, since) if since is not None else start
    period = int((now - start).total_seconds())
    down_s = _measure(down, start, now)
    return {
        "town": slug, "service": service, "tz": tz, "from": db.iso(start), "to": db.iso(now),
        "period_s": max(period, 0), "down_s": down_s,
        "percent": 100 * (1 - down_s / period) if period > 0 else None, "days": strip,
    }


def _merge(spans):
    """Return the union of (start, end) intervals as sorted, disjoint intervals."""
    merged = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _measure(spans, lo, hi) -> int:
    """Return the seconds of disjoint intervals that fall within [lo, hi]."""
    total = sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in spans)
    return int(round(total))
