"""Incident pages, the status banner, the incident/status JSON and Statuspage-compatible JSON."""
from __future__ import annotations

import shapely.geometry
from flask import Blueprint, abort, current_app, g, jsonify, render_template, request, url_for
from flask_babel import gettext as _

from portal import answers
from portal.coverage import geo
from portal.incidents.availability import AVAILABILITY_RULE
from portal.incidents.records import SERVICES
from portal.web import labels, maps
from portal.web.i18n import lang
from portal.web.params import (
    BadParam,
    parse_id,
    parse_lat_lon,
    parse_listing,
    parse_page,
    parse_service,
    parse_town,
    parse_town_name,
)
from portal.web.request import get_db, get_snapshot, now
from portal.web.security import external_url
from portal.web.texts import json_lang

bp = Blueprint("incidents", __name__)
api = Blueprint("incidents_api", __name__, url_prefix="/api/v1")
statuspage = Blueprint("statuspage", __name__, url_prefix="/api/v2")

# Incident areas on maps are simplified to this many metres; the JSON keeps the full shape.
INCIDENT_DISPLAY_TOLERANCE_M = 10
AVAILABILITY_DAYS = 90
HISTORY_PAGE_SIZE = 50


def _incident(incident_id: str) -> dict:
    """Return the incident report for a path id, or answer 404 (a non-number cannot exist either)."""
    number = parse_id(incident_id)
    found = None if number is None else answers.incident_report(
        get_snapshot().incidents, number, now(), get_db(), current_app.config["MONTHLY_FEES"])
    if found is None:
        abort(404)
    return found


def _banner():
    """Return the banner's facts, computed once per request; None if they cannot be read."""
    if "status_banner" not in g:
        try:
            found = answers.status_banner(get_snapshot().incidents, now())
            g.status_banner = answers.in_language(found, lang())
        except Exception:  # noqa: BLE001 -- the page itself must still render during trouble
            current_app.logger.exception("status banner unavailable")
            g.status_banner = None
    return g.status_banner


def _availability(slug: str) -> list[dict]:
    """Return the 90-day availability of each service in a town."""
    return answers.town_availability(get_snapshot().incidents, slug, now(), AVAILABILITY_DAYS,
                                     tz=current_app.config["TIMEZONE"])


@bp.app_context_processor
def status_context():
    """Give every template the banner, availability and the incident words."""
    return {
        "status_banner": _banner, "town_availability": _availability,
        "availability_rule": AVAILABILITY_RULE,
        "kind_label": labels.as_strings(labels.INCIDENT_KIND),
        "incident_status_label": labels.as_strings(labels.INCIDENT_STATUS),
        "service_status_label": labels.as_strings(labels.SERVICE_STATUS),
        "day_status_label": labels.as_strings(labels.DAY_STATUS),
    }


# --- pages ---------------------------------------------------------------------------------------


@bp.get("/incidents")
def index():
    """List ongoing incidents and upcoming maintenance, then history, for ?town= and ?service=."""
    answer = answers.incidents_page(get_snapshot().incidents, now(), parse_town(request.args),
                                    parse_service(request.args), get_db())
    page = parse_page(request.args, len(answer["history"]), HISTORY_PAGE_SIZE)
    return render_template(
        "incidents/list.html", answer=answer, history=answer["history"][page.start:page.stop],
        page=page.number or 1, more=page.stop < len(answer["history"]),
        towns=sorted(get_snapshot().towns, key=lambda t: t.name), services=SERVICES,
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
    listing, service = parse_listing(request.args), parse_service(request.args)
    found = answers.incident_list(get_snapshot().incidents, now(), listing, parse_town(request.args), service,
                                  get_db())
    return jsonify({"incidents": found})


@api.get("/incidents/<incident_id>")
def incident_json(incident_id: str):
    """Return one incident with its updates (oldest first) and the affected area as GeoJSON."""
    return jsonify(_incident(incident_id))


@api.get("/status")
def status_json():
    """Answer whether ?lat=&lon= or ?town= (a slug or any name the search takes) is affected right now."""
    # Coordinates, when given, are the place asked about; a town is only the coarser question.
    lat = lon = town = None
    if "lat" in request.args or "lon" in request.args:
        lat, lon = parse_lat_lon(request.args)
    else:
        # Any name the search box takes: a slug, Печоры or Pechory, a typo it forgives.
        town = parse_town_name(request.args, get_snapshot().gazetteer)
        if town is None:
            raise BadParam("town", _("give a place: ?town=SLUG or ?lat=LAT&lon=LON"))
    return jsonify(answers.place_status(get_snapshot().incidents, now(), lat, lon, town))


@api.get("/summary")
def summary_json():
    """Return every service's status and the active incidents."""
    return jsonify(answers.service_summary(get_snapshot().incidents, now()))


# --- Statuspage-compatible JSON ------------------------------------------------------------------


def _page() -> dict:
    """Return Statuspage's page object for this portal."""
    info = get_snapshot().region
    name = (answers.in_language(answers.provider(current_app.config), json_lang())["name"]
            or info.get("provider") or _("Coverage and outages"))
    return {"id": "portal", "name": name, "url": external_url("pages.index"),
            "time_zone": current_app.config["TIMEZONE"]}


@statuspage.get("/summary.json")
def statuspage_summary():
    """Return components, unresolved incidents, maintenance and the overall status, as Statuspage does."""
    return jsonify(answers.statuspage_summary(get_snapshot().incidents, now(), _page()))


@statuspage.get("/status.json")
def statuspage_status():
    """Return the overall status indicator, as Statuspage does."""
    return jsonify(answers.statuspage_status(get_snapshot().incidents, now(), _page()))


@statuspage.get("/components.json")
def statuspage_components():
    """Return every component (service) with its status, as Statuspage does."""
    return jsonify(answers.statuspage_components(get_snapshot().incidents, now(), _page()))


@statuspage.get("/incidents.json")
def statuspage_incidents():
    """Return the 50 most recent incidents, as Statuspage does."""
    return jsonify(answers.statuspage_incidents(get_snapshot().incidents, now(), _page()))


@statuspage.get("/incidents/unresolved.json")
def statuspage_unresolved():
    """Return the incidents not yet resolved, as Statuspage does."""
    return jsonify(answers.statuspage_incidents(get_snapshot().incidents, now(), _page(), unresolved=True))


@statuspage.get("/scheduled-maintenances.json")
def statuspage_maintenances():
    """Return the 50 most recent maintenance windows, as Statuspage does."""
    return jsonify(answers.statuspage_maintenances(get_snapshot().incidents, now(), _page()))


@statuspage.get("/scheduled-maintenances/upcoming.json")
def statuspage_upcoming():
    """Return the maintenance windows still scheduled, as Statuspage does."""
    return jsonify(answers.statuspage_maintenances(get_snapshot().incidents, now(), _page(), "upcoming"))


@statuspage.get("/scheduled-maintenances/active.json")
def statuspage_active():
    """Return the maintenance windows in progress, as Statuspage does."""
    return jsonify(answers.statuspage_maintenances(get_snapshot().incidents, now(), _page(), "active"))


def init_app(app) -> None:
    """Register the incident pages and JSON blueprints."""
    app.register_blueprint(bp)
    app.register_blueprint(api)
    app.register_blueprint(statuspage)
