"""Answers about one place, coverage and incidents together: the town page and the point check."""
from __future__ import annotations

import sqlite3
from datetime import datetime

import shapely

from portal.answers.incidents import incident_items
from portal.answers.towns import town_brief
from portal.answers.verdicts import nearest_town_text, point_verdicts, with_texts, wording
from portal.coverage.snapshot import Snapshot
from portal.incidents.availability import offered_services
from portal.incidents.language import PRIMARY
from portal.listening import feedback, interest


def town_report(snap: Snapshot, slug: str, now: datetime, conn: sqlite3.Connection,
                promised_days: int = 30) -> dict:
    """Return everything the town page says: verdict, shares, speeds, incidents, extent, demand, feedback.

    ``conn`` reads what the public wrote (demand, "wrong here" reports: numbers only), which is not
    part of the snapshot; ``promised_days`` is the promised response time to a report. An unknown
    slug raises ``UnknownTown`` with suggestions.
    """
    town = snap.gazetteer.find(slug)
    summary = snap.coverage.town_summary(town.slug)
    return {
        **town_brief(town),
        "has_fiber": summary["has_fiber"],
        "best": summary["best"],
        "fiber_share": summary["fiber_share"],
        "technologies": summary["technologies"],
        # Entries are only made for coverage with a share above zero (a sliver rounding to 0.000 included).
        "services_offered": offered_services(
            t["technology"] for t in summary["technologies"] if t["status"] == "live"),
        "incidents": incident_items(snap.incidents, snap.incidents.affecting_town(town.slug, now), now),
        "as_of": snap.as_of,
        "geometry": shapely.geometry.mapping(town.geometry),
        "nearest_fiber": None if summary["has_fiber"] else _nearest_fiber(snap, town),
        "demand": interest.demand(conn, town.slug),
        "feedback": feedback.town_stats(conn, town.slug, promised_days),
    }


def _nearest_fiber(snap: Snapshot, town) -> dict | None:
    """Return where the nearest live fiber lies from a town without fiber: metres and direction from
    its centre, and the town that network is in (None when there is no live fiber anywhere).
    """
    near = snap.coverage.point_answer(town.lat, town.lon)["nearest"].get("fiber")
    if near is None:
        return None
    (where,) = _towns_near(snap, [(near["lon"], near["lat"])])
    return {"distance_m": near["distance_m"], "direction": near["direction"],
            "town": town_brief(where) if where is not None else None}


def _towns_near(snap: Snapshot, lonlats) -> list:
    """Return for each (lon, lat) the town holding it (the compiled search), else the nearest town."""
    found = [snap.coverage.town_at(lon, lat) for lon, lat in lonlats]
    if None in found:
        # The index found these in no town: only the nearest-edge search is left to ask.
        rest = snap.gazetteer.towns_near([p for p, town in zip(lonlats, found) if town is None], outside=True)
        found = [town if town is not None else rest.pop(0) for town in found]
    return found


def check_point(snap: Snapshot, lat: float, lon: float, now: datetime, lang: str = PRIMARY) -> dict:
    """Return what reaches a point: a verdict per technology (worded in ``lang``), coverage there,
    nearest coverage, the nearest town when the point is in none, incidents.
    """
    answer = snap.coverage.point_answer(lat, lon)
    town_slug = answer["town"]["slug"] if answer["town"] else None
    found = snap.incidents.affecting_point(lat, lon, now, town_slug)
    answer["incidents"] = incident_items(snap.incidents, found, now) if found else []
    answer["as_of"] = snap.as_of
    verdicts = point_verdicts(answer, snap.coverage.drop_distance_m, lambda places: _towns_near(snap, places))
    answer["verdicts"] = with_texts(verdicts, lang)
    answer["nearest_town"] = None
    if answer["town"] is None:
        near = snap.gazetteer.nearest(lon, lat, outside=True)  # the index found it in no town
        if near is not None:
            answer["nearest_town"] = {**town_brief(near["town"]), "distance_m": near["distance_m"],
                                      "direction": near["direction"]}
            answer["nearest_town"]["text"] = nearest_town_text(answer["nearest_town"], wording(lang))
    return answer

