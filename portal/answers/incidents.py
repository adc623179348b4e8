"""Answers about incidents: lists, one incident, the incidents page, is a place down, service status.

Each takes the incidents of the live data (``snap.incidents``, or ``IncidentReads.read(conn)`` in
a script) and the moment to answer for; a town is given by slug, and an unknown one raises
``UnknownTown`` with suggestions.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import shapely

from portal.answers.towns import town_brief
from portal.config import DEFAULTS
from portal.data import db
from portal.incidents import language
from portal.incidents.reads import IncidentReads
from portal.incidents.records import SERVICES, Record
from portal.listening import reports


def incident_item(incidents: IncidentReads, rec: Record, now: datetime) -> dict:
    """Return an incident as lists show it at ``now`` (the contract's fields and more)."""
    status, end = rec.status(now), rec.end(now)
    active, maintenance = rec.active(now), rec.kind == "maintenance"
    etas = [{"at": db.iso(u["at"]), "eta": db.iso(u["eta"])} for u in rec.updates if u["eta"]]
    if maintenance:
        eta = db.iso(rec.resolved_at or rec.scheduled_end) if active else None
    else:
        eta = etas[-1]["eta"] if active and etas else None
    updates = [{**u, "at": db.iso(u["at"])} for u in rec.timeline(now)]
    found = {
        "id": rec.id, "title": rec.title, "kind": rec.kind, "status": status,
        "services": list(rec.services), "started_at": db.iso(rec.started_at),
        "resolved_at": db.iso(end), "eta": eta, "towns": list(rec.towns),
        "has_area": bool(rec.areas), "url": f"/incidents/{rec.id}", "cause": rec.cause, "active": active,
        "duration_s": rec.duration_s(now),
        "deadline": incidents.deadlines(rec, now), "eta_history": etas, "updates": updates,
        "updated_at": updates[-1]["at"] if updates else db.iso(rec.started_at),
        # When it was made public (its first update), when staff last changed it, and how often since.
        "announced_at": db.iso(min(rec.updates[0]["at"], now)) if rec.updates else db.iso(rec.started_at),
        "changed_at": db.iso(rec.changed_at()), "sequence": rec.sequence(),
        "scheduled_start": db.iso(rec.started_at) if maintenance else None,
        "scheduled_end": db.iso(rec.scheduled_end) if maintenance else None,
        # Each text in both languages (None where staff wrote none); ``in_language`` sets ``title``,
        # ``cause``, ``where`` and each update's ``message`` to the reader's, with ``*_lang``.
        "title_by_lang": dict(rec.title_by_lang), "cause_by_lang": dict(rec.cause_by_lang),
        "where_by_lang": dict(rec.where_by_lang),
    }
    return language.in_language(found, language.PRIMARY)


def in_language(found, lang: str):
    """Return an answer (dict or list, nested) with every incident text in ``lang`` where written.

    A text written only in the other language is kept, its ``*_lang`` field saying which.
    """
    return language.in_language(found, lang)


def incident_items(incidents: IncidentReads, recs: list[Record], now: datetime) -> list[dict]:
    """Return incidents as lists show them, in the given order."""
    return [incident_item(incidents, r, now) for r in recs]


def with_reported(conn: sqlite3.Connection | None, items: list[dict]) -> list[dict]:
    """Add ``reported`` (distinct people who reported the problem while it was on) to incident answers.

    Reports live beside the snapshot (the public's writes do not bump the data revision), so
    ``conn`` reads them; without one the answers stay as they are. Only the count is public.
    """
    if conn is not None:
        counts = reports.attached_counts(conn, [i["id"] for i in items])
        for item in items:
            item["reported"] = counts.get(item["id"], 0)
    return items


def incident_report(incidents: IncidentReads, incident_id: int, now: datetime,
                    conn: sqlite3.Connection | None = None, fees: dict | None = None) -> dict | None:
    """Return one incident with its timeline, affected area and towns, deadline clock and claims, or None.

    With ``conn``, also how many people reported it (``with_reported``). ``claims`` lists, per
    service whose restoration deadline was missed, what a written claim asks for (``claim``);
    ``fees`` are the monthly fees per service (``MONTHLY_FEES``).
    """
    rec = incidents.get(incident_id)
    if rec is None:
        return None
    found = with_reported(conn, [_report(incidents, rec, now)])[0]
    fees = DEFAULTS["MONTHLY_FEES"] if fees is None else fees
    found["claims"] = [claim(found, c["service"], now, fees) for c in found["clock"] if c["missed"]]
    return found


def claim(incident: dict, service: str, now: datetime, fees: dict) -> dict | None:
    """Return what a subscriber may claim for one service of an incident whose deadline was missed, or None.

    The contract recalculates the monthly fee (``fees[service]``) for every day, full or partial,
    without the service after the deadline (as the deadline e-mail tells subscribers), a month
    counted as 30 days: ``owed = fee × days / 30``, in roubles to the kopeck. The days run from the
    deadline to the restoration (or to ``now`` while it lasts).
    """
    clock = next((c for c in incident.get("clock", ()) if c["service"] == service), None)
    if clock is None or not clock["missed"]:
        return None
    started, ended = db.parse_iso(incident["started_at"]), db.parse_iso(incident["resolved_at"])
    lasted_s = int(((ended or now) - started).total_seconds())
    days = -(-clock["late_s"] // 86400)
    fee = fees.get(service)
    owed = None if fee is None else round(fee * days / 30, 2)
    return {"service": service, "incident_id": incident["id"], "hours": clock["hours"],
            "due_at": clock["due_at"], "started_at": incident["started_at"], "ended_at": db.iso(ended),
            "ongoing": ended is None, "as_of": db.iso(now), "lasted_s": lasted_s, "late_s": clock["late_s"],
            "days": days, "monthly_fee": fee, "owed": owed, "currency": "RUB",
            "url": f"/incidents/{incident['id']}/claim/{service}"}


def provider(settings: dict) -> dict:
    """Return the provider's name, contacts and opening hours from the settings (``PROVIDER_*``)."""
    def pair(key: str) -> dict:
        return {"ru": settings.get(f"PROVIDER_{key}") or None,
                "en": settings.get(f"PROVIDER_{key}_EN") or None}

    return {"name_by_lang": pair("NAME"), "address_by_lang": pair("ADDRESS"), "hours_by_lang": pair("HOURS"),
            "phone": settings.get("PROVIDER_PHONE"), "email": settings.get("PROVIDER_EMAIL"),
            "claim_answer_days": settings.get("CLAIM_ANSWER_DAYS")}


def _report(incidents: IncidentReads, rec: Record, now: datetime) -> dict:
    """Return the whole of one incident: its list form, area, affected towns and deadline clock."""
    found = incident_item(incidents, rec, now)
    area = incidents.area(rec)
    found["geometry"] = None if area is None else json.loads(shapely.to_geojson(area))
    found["affected_towns"] = sorted(incidents.affected_towns(rec))
    towns = [incidents.towns.get(s) for s in found["affected_towns"]]
    found["affected"] = sorted((town_brief(t) for t in towns if t is not None), key=lambda t: t["name"])
    found["clock"] = _deadline_clock(found)
    return found


def _deadline_clock(incident: dict) -> list[dict]:
    """Return per service the contract deadline, the time left, or how late restoration was."""
    ended = db.parse_iso(incident["resolved_at"])
    clock = []
    for service, d in incident["deadline"].items():
        due = db.parse_iso(d["due_at"])
        late_s = int((ended - due).total_seconds()) if ended else -d["remaining_s"]
        clock.append({"service": service, "hours": d["hours"], "due_at": d["due_at"], "missed": d["missed"],
                      "ended": ended is not None, "left_s": max(0, -late_s), "late_s": max(0, late_s)})
    return clock


def incident_list(incidents: IncidentReads, now: datetime, status: str = "active", town: str | None = None,
                  service: str | None = None, conn: sqlite3.Connection | None = None) -> list[dict]:
    """Return incidents by ``status`` (active, resolved, all), optionally of one town or service.

    With ``conn``, each also says how many people reported it (``with_reported``).
    """
    slug = incidents.towns.find(town).slug if town is not None else None
    found = incidents.select(now, status, town=slug, service=service)
    return with_reported(conn, incident_items(incidents, found, now))


def incident_feed(incidents: IncidentReads, now: datetime, town: str | None = None) -> dict:
    """Return what an incident feed holds: every incident (of one town, when given) and that town."""
    found = incidents.towns.find(town) if town is not None else None
    return {"town": town_brief(found) if found else None,
            "incidents": incident_list(incidents, now, "all", town=found.slug if found else None)}


def incidents_page(incidents: IncidentReads, now: datetime, town: str | None = None,
                   service: str | None = None, conn: sqlite3.Connection | None = None) -> dict:
    """Return the incidents page: ongoing, upcoming maintenance and history, for a town or service."""
    found_town = incidents.towns.find(town) if town is not None else None
    slug = found_town.slug if found_town else None
    recs = incidents.select(now, "all", town=slug, service=service)
    found = with_reported(conn, incident_items(incidents, recs, now))
    return {
        "town": town_brief(found_town) if found_town else None,
        "service": service,
        "ongoing": [i for i in found if i["active"] and i["status"] != "scheduled"],
        "upcoming": [i for i in found if i["status"] == "scheduled"],
        "history": [i for i in found if not i["active"]],
    }


def place_status(incidents: IncidentReads, now: datetime, lat: float | None = None, lon: float | None = None,
                 town: str | None = None) -> dict:
    """Return whether a place (a point, a town, or with neither the whole region) is down now."""
    if lat is not None and lon is not None:
        recs = incidents.affecting_point(lat, lon, now)
    elif town is not None:
        recs = incidents.affecting_town(incidents.towns.find(town).slug, now)
    else:
        recs = incidents.active(now)
    found = incident_items(incidents, recs, now)
    problems = [i for i in found if i["kind"] != "maintenance"]
    maintenance = [i for i in found if i["kind"] == "maintenance"]
    down = bool(problems) or any(m["status"] == "in_progress" for m in maintenance)
    return {"down": down, "incidents": problems, "maintenance": maintenance}


def place_problem(incidents: IncidentReads, now: datetime, service: str, lat: float | None = None,
                  lon: float | None = None, town: str | None = None) -> dict | None:
    """Return the first active incident (not maintenance) of ``service`` ``place_status`` lists, or None.

    What a crowd report attaches to; it builds the answer of that one incident only.
    """
    if lat is not None and lon is not None:
        recs = incidents.affecting_point(lat, lon, now)
    else:
        recs = incidents.affecting_town(incidents.towns.find(town).slug, now)
    for rec in recs:
        if rec.kind != "maintenance" and service in rec.services:
            return incident_item(incidents, rec, now)
    return None


def service_summary(incidents: IncidentReads, now: datetime) -> dict:
    """Return each service's status (``IncidentReads.service_status``), the worst, the active incidents."""
    found = incidents.service_status(now)
    return {"status": found["status"], "services": found["services"],
            "incidents": incident_items(incidents, found["incidents"], now), "updated_at": db.iso(now)}


def status_banner(incidents: IncidentReads, now: datetime) -> dict:
    """Return what the banner on every page says: which service is down where, upcoming work."""
    found = service_summary(incidents, now)
    by_id = {i["id"]: i for i in found["incidents"]}
    services = []
    for service, s in found["services"].items():
        if s["status"] == "operational":
            continue
        towns = [incidents.towns.get(slug) for slug in s["towns"]]
        services.append({"service": service, "status": s["status"],
                         "towns": [town_brief(t) for t in towns if t is not None],
                         "incidents": [by_id[i] for i in s["incidents"] if i in by_id]})
    return {"status": found["status"], "services": services,
            "upcoming": [i for i in found["incidents"] if i["status"] == "scheduled"]}


def maintenance_items(incidents: IncidentReads, now: datetime) -> list[dict]:
    """Return every maintenance window (past and planned) with its affected towns."""
    return [_report(incidents, r, now) for r in incidents.select(now, "all") if r.kind == "maintenance"]


def town_calendar(incidents: IncidentReads, now: datetime, town: str) -> dict:
    """Return a town and the maintenance windows (past and planned) affecting it."""
    found = incidents.towns.find(town)
    recs = incidents.select(now, "all", town=found.slug)
    return {"town": town_brief(found),
            "items": [_report(incidents, r, now) for r in recs if r.kind == "maintenance"]}


def town_availability(incidents: IncidentReads, slug: str, now: datetime, days: int = 90,
                      tz: str = DEFAULTS["TIMEZONE"]) -> list[dict]:
    """Return each service's availability in a town over the last ``days`` days."""
    return [incidents.availability(slug, service, now, days, tz=tz) for service in SERVICES]
