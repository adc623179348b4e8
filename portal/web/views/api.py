"""JSON API v1 (see CONTRACT.md): parse, call one function, return JSON."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from portal import answers
from portal.limits import Budget
from portal.web.params import parse_bbox, parse_float, parse_lat_lon
from portal.web.request import get_db, get_snapshot, now
from portal.web.texts import asked_json_lang

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/towns")
def towns():
    """List towns matching ?q=, best first (every town by name without q)."""
    q = request.args.get("q")
    limit = 10 if q is not None else None
    return jsonify({"towns": answers.search_towns(get_snapshot(), q, limit=limit or 10)})


@bp.get("/towns/<slug>")
def town(slug: str):
    """Return one town's coverage, shares and active incidents."""
    return jsonify(answers.town_report(get_snapshot(), slug, now(), get_db(),
                                         current_app.config["FEEDBACK_RESPONSE_DAYS"]))


@bp.get("/check")
def check():
    """Return what reaches the point ?lat=&lon=."""
    lat, lon = parse_lat_lon(request.args)
    # The sentences' language comes from the address alone (?lang=), never from a header or a
    # cookie: API answers are cached and shared without Vary (portal/web/caching.py).
    return jsonify(answers.check_point(get_snapshot(), lat, lon, now(), asked_json_lang()))


@bp.get("/coverage.geojson")
def coverage():
    """Return coverage areas as GeoJSON, optionally within ?bbox= and simplified to ?simplify= metres."""
    bbox = parse_bbox(request.args.get("bbox"))
    tolerance = parse_float(request.args, "simplify", 0, 10_000) if request.args.get("simplify") else None
    config = current_app.config
    body = answers.coverage_geojson_text(
        get_snapshot(), bbox, tolerance, budget=Budget(config["REQUEST_BUDGET_SECONDS"]),
        max_features=config["MAX_GEOJSON_FEATURES"], max_bytes=config["MAX_GEOJSON_BYTES"])
    return Response(body, mimetype="application/geo+json")
