"""The provider on every page, and the written claim a subscriber prints when a deadline is missed.

The claim is filled in from the incident (``answers.claim``): provider, service, dates, how long it
lasted and what the contract owes. The subscriber's name, contract number and address are blank
lines on paper: the portal never asks for them, so it never receives or stores them.
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, render_template

from portal import answers
from portal.web.i18n import lang
from portal.web.params import parse_id
from portal.web.request import get_snapshot, now
from portal.web.security import external_url

bp = Blueprint("claims", __name__)


def provider_info() -> dict:
    """Return the provider's name, contacts and hours (settings ``PROVIDER_*``) in the page's language."""
    return answers.in_language(answers.provider(current_app.config), lang())


@bp.get("/incidents/<incident_id>/claim/<service>")
def claim(incident_id: str, service: str):
    """Show a printable claim for a service whose restoration deadline the incident missed; else 404."""
    number = parse_id(incident_id)
    incident = None if number is None else answers.incident_report(
        get_snapshot().incidents, number, now(), fees=current_app.config["MONTHLY_FEES"])
    claims = incident["claims"] if incident is not None else []
    found = next((c for c in claims if c["service"] == service), None)
    if found is None:
        abort(404)
    return render_template("incidents/claim.html", incident=incident, claim=found,
                           permalink=external_url("incidents.detail", incident_id=incident["id"]))


def init_app(app: Flask) -> None:
    """Register the claim page and give every template the provider."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"provider_info": provider_info})
