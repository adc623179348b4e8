"""Answers about the towns: their short form, search, and the overview of every town."""
from __future__ import annotations

from portal.coverage.index import TECH_ORDER
from portal.coverage.snapshot import Snapshot
from portal.data.layers import Town


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


def overview(snap: Snapshot, conn=None) -> list[dict]:
    """Return one row per town: best technology, fiber share, has fiber, and with ``conn`` demand.

    ``demand`` is how many households asked for fiber there (read through ``conn``: the public's
    writes are not part of the snapshot); without ``conn`` it is left out.
    """
    from portal.listening import interest

    demand = interest.town_counts(conn) if conn is not None else None
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
        if demand is not None:
            rows[-1]["demand"] = demand.get(town.slug, 0)
    return rows


OVERVIEW_SORTS = ("name", "population", "fiber_share", "best", "demand")


def sort_overview(rows: list[dict], key: str, descending: bool, lang: str = "en") -> list[dict]:
    """Sort overview rows by one of OVERVIEW_SORTS; in Russian, names by the Russian alphabet."""
    rank = {t: i for i, t in enumerate(TECH_ORDER)}
    name = "name_ru" if lang == "ru" else "name"
    keys = {
        "name": lambda r: (r[name] or r["name"]).lower(),
        "population": lambda r: r["population"] or 0,
        "fiber_share": lambda r: r["fiber_share"],
        "best": lambda r: rank.get(r["best"], len(rank)),
        "demand": lambda r: r.get("demand", 0),
    }
    return sorted(rows, key=keys[key], reverse=descending)
