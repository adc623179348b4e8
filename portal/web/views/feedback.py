""""This answer is wrong here" on the web: the JSON API, the pages' form, the e-mailed links.

The same defences as the subscription form (``listening``): same-site check or double-submit
token, honeypot, rate limit per client address and e-mail, 400 naming the field, 429.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, url_for
from flask_babel import gettext as _

from portal.data import db
from portal.listening import feedback, queue, ratelimit
from portal.web.i18n import lang
from portal.web.request import get_db
from portal.web.views import listening
from portal.web.views.listening import FIELD_LABELS, NO_STORE

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
    answer, refused = listening.json_write(
        send, "town or lat and lon, technology, message, and optionally email and lang")
    return refused or (jsonify(answer), 202, NO_STORE)


def _notice(heading: str, text: str, status: int = 200, good: bool = True):
    """Render a short answer page, never cached."""
    page = render_template("listening/notice.html", heading=heading, text=text, good=good,
                           status_id="feedback-status", action=None, button=None)
    return page, status, NO_STORE


@bp.post("/feedback")
def form_feedback():
    """Report from a page's form: 202 "thank you" page, or 400 naming the field."""
    thanks = (_("Thank you: we will check this answer"),
              _("Your report counts as open until we answer it; the town page shows how long answers take."))
    return listening.form_write(("email", "town", "lat", "lon", "lang", "technology", "message"), send,
                                lambda _answer: _notice(*thanks, 202), labels=LABELS)


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
