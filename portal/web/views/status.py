"""Incident pages, the status banner, the incident/status JSON and Statuspage-compatible JSON."""
from __future__ import annotations

import re

import shapely.geometry
from flask import Blueprint, abort, current_app, g, jsonify, render_template, request, url_for
from flask_babel import gettext as _

from portal import answers as reports
from portal.coverage import geo
from portal.data import db
from portal.incidents import availability
from portal.incidents import writes as incidents
from portal.web import labels, maps
from portal.web.params import BadParam, parse_choice, parse_lat_lon
from portal.web.request import get_db, get_snapshot, now
from portal.web.security import external_url
from portal.web.views.errors import TownNotFound

bp = Blueprint("incidents", __name__)
api = Blueprint("incidents_api", __name__, url_prefix="/api/v1")
statuspage = Blueprint("statuspage", __name__, url_prefix="/api/v2")

# Incident areas on maps are simplified to this many metres; the JSON keeps the full shape.
INCIDENT_DISPLAY_TOLERANCE_M = 10
AVAILABILITY_DAYS = 90
HISTORY_PAGE_SIZE = 50
_ID = re.compile(r"[0-9]{1,12}")


def deadlines() -> dict:
    """Return the contract's restoration deadlines (hours per service) from the settings."""
    return current_app.config["RESTORE_DEADLINE_HOURS"]


def valid_town(slug: str | None):
    """Return a validated town slug (None when absent), raising TownNotFound with suggestions."""
    if not slug:
        return None
    try:
        return reports.find_town(get_snapshot(), slug).slug
    except LookupError as exc:
        raise TownNotFound(slug, getattr(exc, "suggestions", [])) from None


def _page_number() -> int:
    """Return ?page= as a positive integer (1 when absent)."""
    raw = request.args.get("page") or "1"
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise BadParam("page", _("'page' must be a whole number from 1, not %(value)s", value=repr(raw[:40])))
    return int(raw)


def _incident(incident_id: str) -> dict:
    """Return the incident report for a path id, or answer 404 (a non-number cannot exist either)."""
    found = None
    if _ID.fullmatch(incident_id):
        found = reports.incident_report(get_snapshot(), get_db(), incident_id, now(), deadlines())
    if found is None:
        abort(404)
    return found


def duration(seconds) -> str:
    """Format a number of seconds as '19 h 50 min' or '5 d 19 h'."""
    minutes = max(0, int(seconds or 0)) // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return _("%(d)s d %(h)s h", d=days, h=hours) if hours else _("%(d)s d", d=days)
    if hours:
        return _("%(h)s h %(m)s min", h=hours, m=mins) if mins else _("%(h)s h", h=hours)
    return _("%(m)s min", m=mins) if mins else _("less than a minute")


def _banner():
    """Return the banner's facts, computed once per request; None if they cannot be read."""
    if "status_banner" not in g:
        try:
            g.status_banner = reports.status_banner(get_snapshot(), get_db(), now())
        except Exception:  # noqa: BLE001 -- the page itself must still render during trouble
            current_app.logger.exception("status banner unavailable")
            g.status_banner = None
    return g.status_banner


def _availability(slug: str) -> list[dict]:
    """Return the 90-day availability of each service in a town."""
    return reports.town_availability(get_snapshot(), get_db(), slug, now(), AVAILABILITY_DAYS,
                                     tz=current_app.config["TIMEZONE"])


@bp.app_context_processor
def status_context():
    """Give every template the banner, availability, the incident words and duration formatting."""
    return {
        "status_banner": _banner, "town_availability": _availability, "duration": duration,
        "availability_rule": availability.AVAILABILITY_RULE,
        "kind_label": labels.as_strings(labels.INCIDENT_KIND),
        "incident_status_label": labels.as_strings(labels.INCIDENT_STATUS),
        "service_status_label": labels.as_strings(labels.SERVICE_STATUS),
        "day_status_label": labels.as_strings(labels.DAY_STATUS),
    }


# --- pages ---------------------------------------------------------------------------------------


@bp.get("/incidents")
def index():
    """List ongoing incidents and upcoming maintenance, then history, for ?town= and ?service=."""
    service = parse_choice(request.args, "service", incidents.SERVICES, None)
    town, page = valid_town(request.args.get("town")), _page_number()
    answer = reports.incidents_page(get_snapshot(), get_db(), now(), town, service, deadlines())
    start = (page - 1) * HISTORY_PAGE_SIZE
    return render_template(
        "incidents/list.html", answer=answer, history=answer["history"][start:start + HISTORY_PAGE_SIZE],
        page=page, more=len(answer["history"]) > start + HISTORY_PAGE_SIZE,
        towns=sorted(get_snapshot().towns, key=lambda t: t.name), services=incidents.SERVICES,
    )


@bp.get("/incidents/<incident_id>")
def detail(incident_id: str):
    """Show one incident: timeline, deadline clock, affected towns and area, permanent link."""
    incident = _incident(incident_id)
    return render_template("incidents/detail.html", incident=incident, map=_incident_map(incident),
                           permalink=external_url("incidents.detail", incident_id=incident["id"]))


def _incident_map(incident: dict) -> dict | None:
    """Return the map parts of an incident's affected area (simplified for display), or None."""
    if not incident.get("geometry"):
        return None
    snap = get_snapshot()
    area = shapely.geometry.shape(incident["geometry"])
    shape = geo.display_geometry(area, INCIDENT_DISPLAY_TOLERANCE_M, snap.coverage.projection)
    return maps.coverage_map(
        area.bounds, incidents=[geo.to_geojson(shape or area)], coverage_url=None,
        tiles_url=current_app.config["TILES_URL"], attribution=current_app.config["TILES_ATTRIBUTION"],
        check_url=url_for("pages.check") if "pages.check" in current_app.view_functions else None,
    )


# --- JSON v1 -------------------------------------------------------------------------------------


@api.get("/incidents")
def incidents_json():
    """Return incidents by ?status= (active, resolved, all), ?town= and ?service=."""
    status = parse_choice(request.args, "status", ("active", "resolved", "all"), "active")
    service = parse_choice(request.args, "service", incidents.SERVICES, None)
    town = valid_town(request.args.get("town"))
    found = availability.list_incidents(get_db(), now(), status, town=town, service=service, deadlines=deadlines(),
                                     towns_by_slug=reports.towns_by_slug(get_snapshot()))
    return jsonify({"incidents": found})


@api.get("/incidents/<incident_id>")
def incident_json(incident_id: str):
    """Return one incident with its updates (oldest first) and the affected area as GeoJSON."""
    return jsonify(_incident(incident_id))


@api.get("/status")
def status_json():
    """Answer whether ?lat=&lon= or ?town= is affected right now."""
    # Coordinates, when given, are the place asked about; a town is only the coarser question.
    if "lat" in request.args or "lon" in request.args:
        (lat, lon), town = parse_lat_lon(request.args), None
    elif request.args.get("town"):
        lat = lon = None
        town = valid_town(request.args["town"])
    else:
        raise BadParam("town", _("give a place: ?town=SLUG or ?lat=LAT&lon=LON"))
    answer = availability.status_for(get_db(), now(), lat, lon, town, deadlines=deadlines(),
                                  towns_by_slug=reports.towns_by_slug(get_snapshot()))
    return jsonify(answer)


@api.get("/summary")
def summary_json():
    """Return every service's status and the active incidents."""
    answer = availability.summary(get_db(), now(), deadlines=deadlines(),
                               towns_by_slug=reports.towns_by_slug(get_snapshot()))
    return jsonify({**answer, "updated_at": db.iso(now())})


# --- Statuspage-compatible JSON ------------------------------------------------------------------


def _page() -> dict:
    """Return Statuspage's page object for this portal."""
    info = get_snapshot().region
    name = info.get("provider") or _("Coverage and outages")
    return {"id": "portal", "name": name, "url": external_url("pages.index"),
            "time_zone": current_app.config["TIMEZONE"]}


@statuspage.get("/summary.json")
def statuspage_summary():
    """Return components, unresolved incidents, maintenance and the overall status, as Statuspage does."""
    return jsonify(reports.statuspage_summary(get_snapshot(), get_db(), now(), _page(), deadlines()))


@statuspage.get("/status.json")
def statuspage_status():
    """Return the overall status indicator, as Statuspage does."""
    found = reports.statuspage_summary(get_snapshot(), get_db(), now(), _page(), deadlines())
    return jsonify({"page": found["page"], "status": found["status"]})


def init_app(app) -> None:
    """Register the incident pages and JSON blueprints."""
    app.register_blueprint(bp)
    app.register_blueprint(api)
    app.register_blueprint(statuspage)
