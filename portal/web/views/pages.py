"""HTML pages: each renders the same dict its JSON twin returns."""
from __future__ import annotations

import csv
import io

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _

from portal import answers
from portal.coverage import geo
from portal.web import labels, maps
from portal.web.i18n import lang, town_name
from portal.web.params import parse_choice, parse_lat_lon, parse_page, town_named
from portal.web.request import get_db, get_snapshot, now

bp = Blueprint("pages", __name__)

# Metres around a checked point that its map shows.
CHECK_MAP_RADIUS_M = 1500
# Town shapes on maps are simplified to this many metres; the JSON keeps the full shape.
TOWN_DISPLAY_TOLERANCE_M = 5
REGION_DISPLAY_TOLERANCE_M = 60
# Above this many towns the region map shows each town as a point: 1,000 outlines weigh ~1 MB.
REGION_OUTLINE_LIMIT = 200


def _map_settings() -> dict:
    """Return the tile server settings and the URLs every map's script uses."""
    return {
        "tiles_url": current_app.config["TILES_URL"],
        "attribution": current_app.config["TILES_ATTRIBUTION"],
        "coverage_url": url_for("api.coverage"),
        "check_url": url_for("pages.check"),
        "demand_url": url_for("interest.demand_geojson"),
        "demand_label": _("Households that asked for fiber (cells of at least 250 m)"),
    }


def _legend() -> list[dict]:
    """Return the map legend entries in the current language."""
    return maps.legend(labels.as_strings(labels.TECHNOLOGY))


def _region_map(rows: list[dict]) -> dict:
    """Return the region map: every town coloured by its best technology, click to check."""
    snap = get_snapshot()
    map_towns = []
    outlines = len(rows) <= REGION_OUTLINE_LIMIT
    for row in rows:
        if outlines:
            town = snap.gazetteer.get(row["slug"])
            shape = geo.to_geojson(
                geo.display_geometry(town.geometry, REGION_DISPLAY_TOLERANCE_M, snap.coverage.projection))
        else:
            shape = {"type": "Point", "coordinates": [round(row["lon"], 5), round(row["lat"], 5)]}
        map_towns.append({
            "geometry": shape, "label": town_name(row), "colour": maps.town_colour(row["best"]),
            "url": url_for("pages.town", slug=row["slug"]), "permanent": (row["population"] or 0) >= 5000,
            "population": row["population"] or 0,
        })
    settings = _map_settings()
    return maps.coverage_map(
        snap.coverage.bounds, towns=map_towns, tiles_url=settings["tiles_url"],
        attribution=settings["attribution"], coverage_url=None, check_url=settings["check_url"],
        demand_url=settings["demand_url"], demand_label=settings["demand_label"],
    )


@bp.get("/")
def index():
    """Show the search box, the point check, a region map to click and the status banner."""
    rows = answers.overview(get_snapshot())
    return render_template("index.html", map=_region_map(rows), legend_entries=_legend())


@bp.get("/favicon.ico")
def favicon():
    """Serve the site's icon where browsers and feed readers look for it without a link."""
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon",
                               max_age=7 * 24 * 3600)


@bp.get("/search")
def search():
    """Search towns without JavaScript; a single match goes straight to its page."""
    q = (request.args.get("q") or "").strip()
    snap = get_snapshot()
    towns = answers.search_towns(snap, q, limit=10) if q else []
    one = town_named(snap.gazetteer, q) if towns else None
    if one is not None:
        return redirect(url_for("pages.town", slug=one.slug))
    return render_template("search.html", q=q, towns=towns)


def _overview_rows():
    """Return overview rows sorted as the query string asks."""
    sort = parse_choice(request.args, "sort", answers.OVERVIEW_SORTS, "name")
    default_desc = sort in ("population", "fiber_share", "demand")
    order = parse_choice(request.args, "order", ("asc", "desc"), "desc" if default_desc else "asc")
    rows = answers.sort_overview(answers.overview(get_snapshot(), get_db()), sort, order == "desc", lang())
    return rows, sort, order == "desc"


@bp.get("/towns")
def towns():
    """List the localities (best technology, fiber share) a page at a time, and the region map."""
    rows, sort, desc = _overview_rows()
    page = parse_page(request.args, len(rows), int(current_app.config["OVERVIEW_PAGE_SIZE"]))
    the_map = _region_map(rows)
    sort_labels = {"name": labels.COLUMN["name"], "population": labels.COLUMN["population"],
                   "best": labels.COLUMN["best"], "fiber_share": labels.COLUMN["fiber_share"],
                   "demand": _("Households asking for fiber")}
    return render_template(
        "towns/list.html", rows=rows[page.start:page.stop], total=len(rows), first=page.start + 1,
        last=page.stop, page=page.number, pages=page.pages, sort=sort, desc=desc, sort_labels=sort_labels,
        default_order={"name": "asc", "population": "desc", "best": "asc", "fiber_share": "desc",
                       "demand": "desc"},
        map=the_map, legend_entries=_legend(),
    )


@bp.get("/towns.csv")
def towns_csv():
    """Download the town table as CSV."""
    rows, _sort, _desc = _overview_rows()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["slug", "name", "name_ru", "population", "lat", "lon", "best_technology",
                     "has_fiber", "fiber_share", "fiber_planned_from", "technologies", "demand"])
    for r in rows:
        writer.writerow([r["slug"], r["name"], r["name_ru"] or "", r["population"] or "", r["lat"], r["lon"],
                         r["best"] or "", int(r["has_fiber"]), r["fiber_share"], r["fiber_planned_from"] or "",
                         " ".join(r["technologies"]), r["demand"]])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=towns.csv"})


@bp.get("/towns/<slug>")
def town(slug: str):
    """Show one town: verdict, shares, speeds, map, incidents."""
    snap = get_snapshot()
    if slug != slug.lower() and snap.gazetteer.get(slug.lower()):
        # A slug typed with capitals is still that town: send the visitor to its address.
        return redirect(url_for("pages.town", slug=slug.lower()), code=301)
    report = answers.town_report(snap, slug, now(), get_db(),
                                  current_app.config["FEEDBACK_RESPONSE_DAYS"])
    town_obj = snap.gazetteer.get(slug)
    shape = geo.display_geometry(town_obj.geometry, TOWN_DISPLAY_TOLERANCE_M, snap.coverage.projection)
    settings = _map_settings()
    the_map = maps.coverage_map(
        town_obj.geometry.bounds, towns=[{"geometry": geo.to_geojson(shape), "label": town_name(report),
                                          "colour": "#333333"}],
        tiles_url=settings["tiles_url"], attribution=settings["attribution"],
        coverage_url=settings["coverage_url"], check_url=settings["check_url"],
        demand_url=settings["demand_url"], demand_label=settings["demand_label"],
    )
    return render_template("towns/detail.html", town=report, map=the_map, legend_entries=_legend(),
                           place_status=report["incidents"])


@bp.get("/check")
def check():
    """Answer what reaches one point."""
    lat, lon = parse_lat_lon(request.args)
    snap = get_snapshot()
    answer = answers.check_point(snap, lat, lon, now(), lang())
    settings = _map_settings()
    the_map = maps.coverage_map(
        geo.bounds_around(lon, lat, CHECK_MAP_RADIUS_M), tiles_url=settings["tiles_url"],
        attribution=settings["attribution"], coverage_url=settings["coverage_url"],
        check_url=settings["check_url"], marker={"location": (lat, lon), "label": f"{lat:.5f}, {lon:.5f}"},
        demand_url=settings["demand_url"], demand_label=settings["demand_label"],
    )
    return render_template("check.html", answer=answer, lat=lat, lon=lon, map=the_map,
                           legend_entries=_legend(), place_status=answer["incidents"])
