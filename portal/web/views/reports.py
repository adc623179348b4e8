"""Crowd reports on the web: "it is not working here" (JSON and the pages' form) and the counts.

Uses the subscription side's defences as they are (``listening``): the same-site check for
form posts, the honeypot field, per-client rate limits shared by every worker, 429 with
Retry-After, 400 naming the field. A reporter is known only by a cookie of random bytes and
the client address, both hashed with a key that changes daily (``portal.listening.reports``).
"""
from __future__ import annotations

import secrets

from flask import Blueprint, jsonify, make_response, render_template, request
from flask_babel import gettext as _

from portal import answers
from portal.data import db
from portal.listening import queue, ratelimit, reports, store, subscriptions
from portal.listening.subscriptions import SubscriptionError
from portal.web.i18n import lang, town_name
from portal.web.params import parse_service, parse_town
from portal.web.request import get_db, get_snapshot, now
from portal.web.views import listening

bp = Blueprint("reports", __name__)

REPORTER_COOKIE = "reporter"
# Reports per client address and hour past which it gets 429 (a household behind one
# carrier-grade NAT address still fits; one reporter counts once per place, service and hour anyway).
LIMITS = {"report": (60, 3600)}


def _incident_for(place: dict, service: str) -> dict | None:
    """Return the active incident (not maintenance) covering the place and service, as the public sees it."""
    return answers.place_problem(get_snapshot().incidents, now(), service, place["lat"], place["lon"],
                                 place["town"])


def _parse(data) -> tuple[str, dict]:
    """Return (service, place) where place has town, cell and the cell's centre (never the point)."""
    if data.get("lang") not in (None, "", "ru", "en"):
        raise SubscriptionError("lang", "lang must be ru or en")
    if not isinstance(data.get("email") or "", str):
        raise SubscriptionError("email", "email must be a string: an e-mail address")
    try:
        service = reports.check_service(data.get("service"))
        town, cell, lat, lon = subscriptions.parse_place(data, get_db())
    except reports.ReportError as exc:
        raise SubscriptionError(exc.field, str(exc)) from None
    if cell is not None:
        # A point's town, asked of its cell's centre so that the answer holds for the whole cell.
        found = get_snapshot().coverage.point_answer(lat, lon)["town"]
        town = found["slug"] if found else None
    return service, {"town": town, "cell": cell, "lat": lat, "lon": lon}


def submit(data) -> tuple[dict, str | None]:
    """Validate, rate-limit and store one report; return (answer, new reporter cookie or None).

    The rate count and the report commit in one transaction on this thread's write connection
    (one commit per report). An e-mail is checked first and subscribed after the report.
    """
    config = listening.settings()
    address = listening.client_address()
    secret = db.get_meta(get_db()).get("listening_key") or ""
    service, place = _parse(data)
    if data.get("email"):
        subscriptions.normalise_email(data.get("email"))  # a refused address refuses the whole report
    cookie = request.cookies.get(REPORTER_COOKIE)
    fresh = None
    if not cookie or len(cookie) != 22:
        cookie = fresh = secrets.token_urlsafe(16)
    incident = _incident_for(place, service)
    at = now().timestamp()
    # What follows reads through the write connection, on which the report commits.
    with listening.writing(store.thread_connection(config.database)) as conn:
        # Counted under a keyed hash: not even the rate counts keep an address.
        ratelimit.hit_in(conn, config, "report", ratelimit.email_key(secret, address),
                         {**LIMITS, **listening.rate_limits()})
        made = reports.record(conn, secret=secret, service=service, town=place["town"],
                              cell=place["cell"], address=address,
                              cookie=cookie, at=at, incident_id=incident["id"] if incident else None)
        if incident:
            answer = {"incident": _brief(incident), "reported": reports.attached(conn, incident["id"])}
        else:
            key = {"town": place["town"]} if place["town"] else {"cell": place["cell"]}
            answer = {"incident": None, "last_hour": reports.reporters(conn, service=service, at=at, **key),
                      "usual": round(reports.usual(conn, service=service, at=at, **key), 1)}
    if made["drafted"]:
        queue.nudge(config)  # staff's notice of the new draft is in the outbox: deliver it now
    if data.get("email"):
        # Told when staff confirm or resolve: a pending subscription to this place (double opt-in).
        listening.subscribe({"email": data.get("email"), "town": place["town"],
                             "lat": None if place["town"] else place["lat"],
                             "lon": None if place["town"] else place["lon"],
                             "services": [service], "lang": data.get("lang") or lang()})
    status = "counted" if made["counted"] else "already_counted"
    return {"status": status, "service": service, "town": place["town"], **answer}, fresh


def _brief(incident: dict) -> dict:
    return {k: incident.get(k) for k in ("id", "title", "status", "eta", "url")}


def _with_cookie(response, fresh: str | None):
    if fresh:
        response.set_cookie(REPORTER_COOKIE, fresh, max_age=86400, httponly=True, samesite="Lax",
                            secure=request.is_secure or listening.settings().base_url.startswith("https:"))
    return response


REPORT_LABELS = {"internet": lambda: _("No internet"), "tv": lambda: _("No TV"),
                 "phone": lambda: _("No phone")}


@bp.app_context_processor
def report_context():
    """Give the report form its button words and, where no place is given, the towns to choose from."""
    def report_towns() -> list[tuple[str, str]]:
        snap = get_snapshot()
        return sorted(((t.slug, town_name(t)) for t in snap.towns), key=lambda p: p[1])

    return {"report_label": {s: label() for s, label in REPORT_LABELS.items()}, "report_towns": report_towns}


@bp.post("/api/v1/reports")
def api_report():
    """"It is not working here" by JSON: 202 {"status": "counted", ...what the reporter should see}."""
    found, refused = listening.json_write(submit, "service and town or lat and lon")
    if refused:
        return refused
    answer, fresh = found
    return _with_cookie(jsonify(answer), fresh), 202, listening.NO_STORE


def _reported(found):
    """The form's 202 page with what is known (``found``: answer and new cookie; None for a robot)."""
    if found is None:
        return render_template("listening/reported.html", answer=None), 202, listening.NO_STORE
    answer, fresh = found
    page = make_response(render_template("listening/reported.html", answer=answer), 202, listening.NO_STORE)
    return _with_cookie(page, fresh)


@bp.post("/reports")
def form_report():
    """"It is not working here" from a page's form: 202 page with what is known, or 400 naming the field."""
    return listening.form_write(("service", "town", "lat", "lon", "email", "lang"), submit, _reported)


@bp.get("/api/v1/reports")
def api_counts():
    """Distinct reporters per service in the last hour in a town, and the usual level for this hour."""
    slug = parse_town(request.args)
    if not slug:
        return jsonify({"error": "town: give a town slug, e.g. ?town=pechory", "field": "town"}), 400
    slug = get_snapshot().incidents.towns.find(slug).slug
    conn = get_db()
    # Reports do not bump the data revision, so the answer carries its own short lifetime.
    headers = {"Cache-Control": "public, max-age=10"}
    counts = reports.town_counts(conn, slug, now().timestamp())
    return jsonify({"town": slug, "services": counts}), 200, headers


@bp.get("/api/v1/reports.geojson")
def api_cells():
    """Report counts of the last hour per ~100 m cell (a map layer): squares, never a point."""
    from portal.listening import cells

    service = parse_service(request.args)
    features = []
    for row in reports.cell_counts(get_db(), now().timestamp(), service):
        west, south, east, north = cells.cell_bounds(row["cell"])
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"service": row["service"], "count": row["count"]}})
    body = jsonify({"type": "FeatureCollection", "features": features})
    body.mimetype = "application/geo+json"
    return body, 200, {"Cache-Control": "public, max-age=10"}
