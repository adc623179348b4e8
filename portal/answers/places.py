"""Answers about one place, coverage and incidents together: the town page and the point check."""
from __future__ import annotations

import sqlite3
from datetime import datetime

import shapely

from portal.answers.incidents import incident_items
from portal.answers.towns import town_brief
from portal.coverage.snapshot import Snapshot
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
        "incidents": incident_items(snap.incidents, snap.incidents.affecting_town(town.slug, now), now),
        "as_of": snap.as_of,
        "geometry": shapely.geometry.mapping(town.geometry),
        "demand": interest.demand(conn, town.slug),
        "feedback": feedback.town_stats(conn, town.slug, promised_days),
    }


def check_point(snap: Snapshot, lat: float, lon: float, now: datetime) -> dict:
    """Return what reaches a point: coverage there, nearest coverage, incidents."""
    answer = snap.coverage.point_answer(lat, lon)
    town_slug = answer["town"]["slug"] if answer["town"] else None
    found = snap.incidents.affecting_point(lat, lon, now, town_slug)
    answer["incidents"] = incident_items(snap.incidents, found, now) if found else []
    answer["as_of"] = snap.as_of
    return answer

