""""Bring fiber here" on the web: the JSON API, the pages' form, and the public demand layer.

The write side reuses the subscription form's defences (``listening``): same-site check or
double-submit token, honeypot, rate limit per client address, 400 naming the field, 429.
"""
from __future__ import annotations

import secrets

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask_babel import gettext as _

from portal import answers
from portal.data import db
from portal.listening import interest, queue, ratelimit, store
from portal.web.i18n import lang
from portal.web.request import get_db
from portal.web.views import listening
from portal.web.views.listening import NO_STORE

bp = Blueprint("interest", __name__)

# A random id per browser, so a household behind a shared address still counts, and one
# household does not count twice from the same browser (only its hash with the place is kept).
HOUSEHOLD_COOKIE = "hh"


def register(data) -> tuple[dict, str]:
    """Validate, rate-limit and count one registration; return the answer and the household cookie."""
    config = listening.settings()
    client = listening.client_address()
    ratelimit.hit(config, "client", client, listening._limits())
    conn = get_db()
    item = interest.parse(data, conn, default_lang=lang())
    secret = db.get_meta(conn).get("listening_key") or ""
    if item.email:
        ratelimit.hit(config, "email", ratelimit.email_key(secret, item.email), listening._limits())
    cookie = request.cookies.get(HOUSEHOLD_COOKIE)
    if not cookie or len(cookie) != 32:
        cookie = secrets.token_hex(16)
    key = interest.household_key(secret, client, cookie, item.place)
    with listening.writing() as write:
        made = interest.register(write, item, key, db.utcnow())
    answer = {"status": "counted" if made["counted"] else "already counted"}
    if made["token"]:
        queue.nudge(config)  # the confirmation letter
        answer["confirmation"] = "sent"
    return answer, cookie


def _with_cookie(response, cookie: str):
    """Keep the household's id for a year (never read by scripts: HttpOnly)."""
    response.set_cookie(HOUSEHOLD_COOKIE, cookie, max_age=365 * 86400, httponly=True, samesite="Lax",
                        secure=request.is_secure or listening.settings().base_url.startswith("https:"))
    return response


@bp.post("/api/v1/interest")
def api_interest():
    """Register interest by JSON: 202 {"status": "counted" | "already counted"}."""
    found, refused = listening.json_write(register, "town or lat and lon, and optionally email and lang")
    if refused:
        return refused
    answer, cookie = found
    response = jsonify(answer)
    response.status_code = 202
    response.headers.update(NO_STORE)
    return _with_cookie(response, cookie)


def _counted(found):
    """The form's 202 page (``found``: the answer and household cookie; None for a robot)."""
    if found is None:
        return render_template("listening/interest_counted.html"), 202, NO_STORE
    answer, cookie = found
    page = render_template("listening/interest_counted.html", confirm_sent=bool(answer.get("confirmation")))
    return _with_cookie(Response(page, 202, NO_STORE), cookie)


@bp.post("/interest")
def form_interest():
    """Register interest from a page's form: 202 "thank you" page, or 400 naming the field."""
    return listening.form_write(("email", "town", "lat", "lon", "lang"), register, _counted)


@bp.get("/api/v1/demand.geojson")
def demand_geojson():
    """Return households per public cell (≥ 250 m, at least the minimum count) as GeoJSON squares' centres."""
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
                 "properties": {"cell": c["cell"], "size_m": c["size_m"], "households": c["households"]}}
                for c in interest.cell_counts(get_db())]
    body = answers.dumps_geojson({"type": "FeatureCollection", "features": features})
    return Response(body, mimetype="application/geo+json", headers=NO_STORE)


def _notice(heading: str, text: str, status: int = 200, good: bool = True, **form):
    """Render a short answer page, never cached."""
    page = render_template("listening/notice.html", heading=heading, text=text, good=good,
                           status_id="interest-status", action=form.get("action"), button=form.get("button"))
    return page, status, NO_STORE


@bp.get("/interest/confirm/<token>")
def confirm(token: str):
    """Confirm the address of a registration from its e-mailed link."""
    with listening.writing() as conn:
        found = interest.confirm(conn, token, db.utcnow())
    if not found:
        return _notice(_("This link is no longer valid"), _("The registration was deleted, or the link is "
                                                            "incomplete."), 404, good=False)
    return _notice(_("Address confirmed"), _("We will write once, when fiber arrives at your place. Each "
                                             "message has a link that deletes your address."),
                   action=url_for("interest.forget", token=token), button=_("Delete my address and registration"))


@bp.get("/interest/forget/<token>")
def forget_page(token: str):
    """Show what the link deletes, with the button that does it (a GET changes nothing: link scanners)."""
    conn = store.connect(listening.settings().database)
    try:
        known = interest.is_known_link(conn, token)
    finally:
        conn.close()
    if not known:
        return _notice(_("Deleted"), _("There is nothing left to delete for this link."))
    return _notice(_("Delete my address and registration"),
                   _("Your e-mail address and your household's request for fiber are deleted at once."),
                   good=False, action=url_for("interest.forget", token=token), button=_("Delete"))


@bp.post("/interest/forget/<token>")
def forget(token: str):
    """Delete the registration and its address (also the one-click POST of List-Unsubscribe)."""
    with listening.writing() as conn:
        interest.forget_link(conn, token)
    return _notice(_("Deleted"), _("Your e-mail address and your registration are deleted."))


def init_app(app) -> None:
    """Register the blueprint."""
    app.register_blueprint(bp)
    from portal.web.views import feedback

    app.register_blueprint(feedback.bp)
