"""The answers the portal gives, as plain dicts: each one renders as a page and as its JSON twin."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import shapely

from portal.coverage.index import TECH_ORDER
from portal.coverage.snapshot import Snapshot
from portal.data import db
from portal.data.layers import Town
from portal.incidents import availability
from portal.incidents import writes as incidents
from portal.listening import interest


def town_brief(town: Town) -> dict:
    """Return the short JSON form of a town."""
    return {
        "slug": town.slug,
        "name": town.name,
        "name_ru": town.name_ru,
        "population": town.population,
        "lat": round(town.lat, 6),
        "lon": round(town.lon, 6),
    }


def search_towns(snap: Snapshot, query: str | None, limit: int = 10) -> list[dict]:
    """Return towns matching ``query`` best first, or every town by name without one."""
    if query is None:
        return [town_brief(t) for t in snap.gazetteer.towns]
    return [town_brief(t) for t in snap.gazetteer.search(query, limit=limit)]


def clear_match(snap: Snapshot, query: str) -> str | None:
    """Return the slug of the one town a query clearly names (as staff scripts resolve it), else None."""
    try:
        return snap.gazetteer.resolve(query).slug
    except LookupError:
        return None


def find_town(snap: Snapshot, slug: str) -> Town:
    """Return the town with this slug or raise LookupError carrying suggestions."""
    town = snap.gazetteer.get(slug)
    if town is None:
        error = LookupError(slug)
        error.suggestions = snap.gazetteer.suggest(slug.replace("-", " "), limit=5)
        raise error
    return town


def town_report(snap: Snapshot, conn: sqlite3.Connection, slug: str, now: datetime) -> dict:
    """Return everything the town page says: verdict, shares, speeds, incidents, extent."""
    town = find_town(snap, slug)
    summary = snap.coverage.town_summary(town.slug)
    return {
        **town_brief(town),
        "has_fiber": summary["has_fiber"],
        "best": summary["best"],
        "fiber_share": summary["fiber_share"],
        "technologies": summary["technologies"],
        "incidents": availability.affecting_town(conn, town.slug, now),
        "as_of": snap.as_of,
        "geometry": shapely.geometry.mapping(town.geometry),
        "demand": interest.demand(conn, town.slug),
    }


def check_point(snap: Snapshot, conn: sqlite3.Connection, lat: float, lon: float, now: datetime) -> dict:
    """Return what reaches a point: coverage there, nearest coverage, incidents."""
    answer = snap.coverage.point_answer(lat, lon)
    town_slug = answer["town"]["slug"] if answer["town"] else None
    answer["incidents"] = availability.affecting_point(conn, lat, lon, now, town_slug=town_slug)
    answer["as_of"] = snap.as_of
    return answer


def overview(snap: Snapshot) -> list[dict]:
    """Return one row per town: best technology, fiber share, has fiber."""
    summaries = snap.coverage.all_town_summaries()
    rows = []
    for town in snap.gazetteer.towns:
        s = summaries[town.slug]
        live = {t["technology"] for t in s["technologies"] if t["status"] == "live" and t["share"] > 0}
        planned = [t for t in s["technologies"] if t["status"] == "planned" and t["technology"] == "fiber"]
        rows.append({
            **town_brief(town),
            "best": s["best"],
            "has_fiber": s["has_fiber"],
            "fiber_share": s["fiber_share"],
            "technologies": [t for t in TECH_ORDER if t in live],
            "fiber_planned_from": min((t["available_from"] for t in planned if t["available_from"]), default=None),
        })
    return rows


OVERVIEW_SORTS = ("name", "population", "fiber_share", "best")


def sort_overview(rows: list[dict], key: str, descending: bool, lang: str = "en") -> list[dict]:
    """Sort overview rows by one of OVERVIEW_SORTS; in Russian, names by the Russian alphabet."""
    rank = {t: i for i, t in enumerate(TECH_ORDER)}
    name = "name_ru" if lang == "ru" else "name"
    keys = {
        "name": lambda r: (r[name] or r["name"]).lower(),
        "population": lambda r: r["population"] or 0,
        "fiber_share": lambda r: r["fiber_share"],
        "best": lambda r: rank.get(r["best"], len(rank)),
    }
    return sorted(rows, key=keys[key], reverse=descending)


def coverage_geojson(snap: Snapshot, bbox, tolerance_m: float | None = None) -> dict:
    """Return coverage areas (optionally within a bbox, simplified) as a FeatureCollection."""
    features = []
    for area in snap.coverage.areas_in_bbox(bbox, tolerance_m=tolerance_m):
        features.append({
            "type": "Feature",
            "properties": {
                "technology": area.technology,
                "status": area.status,
                "max_down_mbps": area.max_down_mbps,
                "max_up_mbps": area.max_up_mbps,
                "available_from": area.available_from,
            },
            "geometry": shapely.geometry.mapping(area.geometry),
        })
    return {"type": "FeatureCollection", "features": features}


def dumps_geojson(obj: dict) -> str:
    """Serialise GeoJSON compactly."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- incidents: pages, banner, Statuspage shapes -------------------------------------------------


def towns_by_slug(snap: Snapshot) -> dict:
    """Return ``{slug: Town}`` of the live towns (saves the incident reads a layer load)."""
    return {t.slug: t for t in snap.towns}


def incidents_page(snap: Snapshot, conn: sqlite3.Connection, now: datetime, town: str | None = None,
                   service: str | None = None, deadlines=None) -> dict:
    """Return the incidents page: ongoing, upcoming maintenance and history, for a town or service."""
    found_town = find_town(snap, town) if town else None
    found = availability.list_incidents(conn, now, "all", town=found_town.slug if found_town else None,
                                        service=service, deadlines=deadlines, towns_by_slug=towns_by_slug(snap))
    return {
        "town": town_brief(found_town) if found_town else None,
        "service": service,
        "ongoing": [i for i in found if i["active"] and i["status"] != "scheduled"],
        "upcoming": [i for i in found if i["status"] == "scheduled"],
        "history": [i for i in found if not i["active"]],
    }


def incident_report(snap: Snapshot, conn: sqlite3.Connection, incident_id, now: datetime,
                    deadlines=None) -> dict | None:
    """Return one incident with its affected towns named and its deadline clock, or None."""
    found = availability.get_incident(conn, incident_id, now, deadlines=deadlines,
                                      towns_by_slug=towns_by_slug(snap))
    if found is None:
        return None
    towns = [snap.gazetteer.get(s) for s in found["affected_towns"]]
    found["affected"] = sorted((town_brief(t) for t in towns if t is not None), key=lambda t: t["name"])
    found["clock"] = deadline_clock(found)
    return found


def deadline_clock(incident: dict) -> list[dict]:
    """Return per service the contract deadline, the time left, or how late restoration was."""
    ended = db.parse_iso(incident["resolved_at"])
    clock = []
    for service, d in incident["deadline"].items():
        due = db.parse_iso(d["due_at"])
        late_s = int((ended - due).total_seconds()) if ended else -d["remaining_s"]
        clock.append({"service": service, "hours": d["hours"], "due_at": d["due_at"], "missed": d["missed"],
                      "ended": ended is not None, "left_s": max(0, -late_s), "late_s": max(0, late_s)})
    return clock


def status_banner(snap: Snapshot, conn: sqlite3.Connection, now: datetime) -> dict:
    """Return what the banner on every page says: which service is down where, upcoming work."""
    found = availability.summary(conn, now, towns_by_slug=towns_by_slug(snap))
    by_id = {i["id"]: i for i in found["incidents"]}
    services = []
    for service, s in found["services"].items():
        if s["status"] == "operational":
            continue
        towns = [snap.gazetteer.get(slug) for slug in s["towns"]]
        services.append({"service": service, "status": s["status"],
                         "towns": [town_brief(t) for t in towns if t is not None],
                         "incidents": [by_id[i] for i in s["incidents"] if i in by_id]})
    return {"status": found["status"], "services": services,
            "upcoming": [i for i in found["incidents"] if i["status"] == "scheduled"]}


def maintenance_items(snap: Snapshot, conn: sqlite3.Connection, now: datetime) -> list[dict]:
    """Return every maintenance window (past and planned) with its affected towns."""
    listed = availability.list_incidents(conn, now, "all", towns_by_slug=towns_by_slug(snap))
    items = []
    for item in listed:
        if item["kind"] == "maintenance":
            items.append(incident_report(snap, conn, item["id"], now))
    return items


# Statuspage's words for the portal's: component status → page indicator and its description.
STATUSPAGE_INDICATOR = {
    "operational": ("none", "All Systems Operational"),
    "under_maintenance": ("maintenance", "Service Under Maintenance"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major System Outage"),
}
SERVICE_NAMES = {"internet": "Internet", "tv": "TV", "phone": "Phone"}


def statuspage_summary(snap: Snapshot, conn: sqlite3.Connection, now: datetime, page: dict,
                       deadlines=None) -> dict:
    """Return the portal's status in the shape of Statuspage's /api/v2/summary.json."""
    found = availability.summary(conn, now, deadlines=deadlines, towns_by_slug=towns_by_slug(snap))
    page_id, stamp = page["id"], db.iso(now)
    components = [{
        "id": service, "name": SERVICE_NAMES.get(service, service), "status": s["status"],
        "created_at": None, "updated_at": stamp, "position": n, "description": None, "showcase": True,
        "start_date": None, "group_id": None, "page_id": page_id, "group": False,
        "only_show_if_degraded": False,
    } for n, (service, s) in enumerate(found["services"].items(), start=1)]
    by_service = {c["id"]: c for c in components}

    def incident(i: dict) -> dict:
        status = i["status"]
        impact = "maintenance" if i["kind"] == "maintenance" else "minor" if i["kind"] == "degraded" else (
            "critical" if any(by_service[s]["status"] == "major_outage" for s in i["services"]) else "major")
        affected = [by_service[s] for s in i["services"]]
        updates = [{
            "id": f"{i['id']}-{n}", "status": u["status"], "body": u["message"], "incident_id": str(i["id"]),
            "created_at": u["at"], "updated_at": u["at"], "display_at": u["at"],
        } for n, u in enumerate(i["updates"], start=1)]
        monitoring = [u["at"] for u in i["updates"] if u["status"] == "monitoring"]
        out = {
            "id": str(i["id"]), "name": i["title"], "status": status, "impact": impact,
            "created_at": i["updates"][0]["at"] if i["updates"] else i["started_at"],
            "updated_at": i["updated_at"], "started_at": i["started_at"],
            "monitoring_at": monitoring[-1] if monitoring else None, "resolved_at": i["resolved_at"],
            "shortlink": page["url"].rstrip("/") + i["url"], "page_id": page_id,
            # Statuspage lists an incident's updates newest first.
            "incident_updates": updates[::-1], "components": affected,
        }
        if i["kind"] == "maintenance":
            out.update(scheduled_for=i["scheduled_start"], scheduled_until=i["scheduled_end"])
        return out

    incidents = [incident(i) for i in found["incidents"] if i["kind"] != "maintenance"]
    maintenances = [incident(i) for i in found["incidents"] if i["kind"] == "maintenance"]
    return {"page": {**page, "updated_at": stamp}, "components": components, "incidents": incidents,
            "scheduled_maintenances": maintenances, "status": statuspage_indicator(found["status"])}


def statuspage_indicator(status: str) -> dict:
    """Return Statuspage's overall {indicator, description} for the worst component status."""
    indicator, description = STATUSPAGE_INDICATOR[status]
    return {"indicator": indicator, "description": description}


def town_availability(snap: Snapshot, conn: sqlite3.Connection, slug: str, now: datetime, days: int = 90,
                      tz: str = availability.TIMEZONE) -> list[dict]:
    """Return each service's availability in a town over the last ``days`` days."""
    towns = towns_by_slug(snap)
    return [availability.availability(conn, slug, service, now, days, tz=tz, towns_by_slug=towns)
            for service in incidents.SERVICES]
