"""The answers the portal gives, as plain dicts: each one renders as a page and as its JSON twin."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import shapely

from . import incidents
from .coverage import TECH_ORDER
from .layers import Town
from .state import Snapshot


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
        "incidents": incidents.affecting_town(conn, town.slug, now),
        "as_of": snap.as_of,
        "geometry": shapely.geometry.mapping(town.geometry),
    }


def check_point(snap: Snapshot, conn: sqlite3.Connection, lat: float, lon: float, now: datetime) -> dict:
    """Return what reaches a point: coverage there, nearest coverage, incidents."""
    answer = snap.coverage.point_answer(lat, lon)
    town_slug = answer["town"]["slug"] if answer["town"] else None
    answer["incidents"] = incidents.affecting_point(conn, lat, lon, now, town_slug=town_slug)
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


def sort_overview(rows: list[dict], key: str, descending: bool) -> list[dict]:
    """Sort overview rows by one of OVERVIEW_SORTS."""
    rank = {t: i for i, t in enumerate(TECH_ORDER)}
    keys = {
        "name": lambda r: r["name"].lower(),
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
