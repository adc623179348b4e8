""""This answer is wrong here" on the web: the JSON API, the pages' form, the e-mailed links.

The same defences as the subscription form (``listening``): same-site check or double-submit
token, honeypot, rate limit per client address and e-mail, 400 naming the field, 429.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request, url_for
from flask_babel import gettext as _

from portal.data import db
from portal.listening import feedback, queue, ratelimit
from portal.listening.subscriptions import SubscriptionError
from portal.web.i18n import lang
from portal.web.request import get_db
from portal.web.views import listening
from portal.web.views.listening import FIELD_LABELS, HONEYPOT, NO_STORE

bp = Blueprint("feedback", __name__)

LABELS = {**FIELD_LABELS, "technology": lambda: _("Technology"), "message": lambda: _("What is wrong")}


def send(data) -> dict:
    """Validate, rate-limit and store one report; nudge the worker when a confirmation is due."""
    config = listening.settings()
    ratelimit.hit(config, "client", "feedback:" + listening.client_address(), listening._limits())
    conn = get_db()
    item = feedback.parse(data, conn, default_lang=lang())
    if item.email:
        secret = db.get_meta(conn).get("listening_key") or ""
        ratelimit.hit(config, "email", ratelimit.email_key(secret, item.email), listening._limits())
    with listening.writing() as write:
        feedback.submit(write, item, db.utcnow())
    if item.email:
        queue.nudge(config)
    return {"status": "received"}


@bp.post("/api/v1/feedback")
def api_feedback():
    """Report that an answer is wrong here, by JSON: 202 {"status": "received"}."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"error": "body: send a JSON object (Content-Type: application/json) with town or lat "
                                 "and lon, technology, message, and optionally email and lang",
                        "field": "body"}), 400, NO_STORE
    try:
        return jsonify(send(data)), 202, NO_STORE
    except SubscriptionError as exc:
        return jsonify({"error": str(exc), "field": exc.field}), 400, NO_STORE
    except ratelimit.Limited as exc:
        return listening._too_many(exc, page=False)


def _notice(heading: str, text: str, status: int = 200, good: bool = True):
    """Render a short answer page, never cached."""
    page = render_template("listening/notice.html", heading=heading, text=text, good=good,
                           status_id="feedback-status", action=None, button=None)
    return page, status, NO_STORE


@bp.post("/feedback")
def form_feedback():
    """Report from a page's form: 202 "thank you" page, or 400 naming the field."""
    if not listening.same_site():
        message = _("This form was sent from another site, or your browser sent no origin. Reload the page "
                    "and send it again.")
        page = render_template("errors/error.html", status=403, message=message, suggestions=[])
        return page, 403, NO_STORE
    thanks = (_("Thank you: we will check this answer"),
              _("Your report counts as open until we answer it; the town page shows how long answers take."))
    form = request.form
    if form.get(HONEYPOT):
        return _notice(*thanks, 202)
    data = {k: form.get(k) for k in ("email", "town", "lat", "lon", "lang", "technology", "message")}
    if data.get("lat") or data.get("lon"):
        data["town"] = None
    try:
        send(data)
    except SubscriptionError as exc:
        label = LABELS[exc.field]() if exc.field in LABELS else exc.field
        message = _("Please correct “%(field)s”: %(reason)s", field=label, reason=str(exc))
        page = render_template("errors/error.html", status=400, message=message, suggestions=[])
        return page, 400, NO_STORE
    except ratelimit.Limited as exc:
        return listening._too_many(exc, page=True)
    return _notice(*thanks, 202)


@bp.get("/feedback/confirm/<token>")
def confirm(token: str):
    """Confirm a report's address from its e-mailed link."""
    with listening.writing() as conn:
        found = feedback.confirm(conn, token, db.utcnow())
    queue.nudge(listening.settings())
    if not found:
        return _notice(_("This link is no longer valid"), _("The address was deleted, or the link is incomplete."),
                       404, good=False)
    return _notice(_("Address confirmed"), _("Our answer to your report will be sent to this address."))


@bp.get("/feedback/forget/<token>")
def forget_page(token: str):
    """Show the button that deletes a report's address (a GET changes nothing)."""
    page = render_template("listening/notice.html", heading=_("Delete my address"),
                           text=_("Your e-mail address is deleted from your report at once."), good=False,
                           status_id="feedback-status", action=url_for("feedback.forget", token=token),
                           button=_("Delete"))
    return page, 200, NO_STORE


@bp.post("/feedback/forget/<token>")
def forget(token: str):
    """Delete a report's address."""
    with listening.writing() as conn:
        feedback.forget_link(conn, token)
    return _notice(_("Deleted"), _("Your e-mail address is deleted."))
