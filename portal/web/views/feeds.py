"""Atom feeds of incidents (all, per town) and the iCalendar of planned maintenance."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from flask_babel import gettext as _

from portal import answers
from portal.incidents import feeds
from portal.web import labels
from portal.web.i18n import lang, town_name, zone_name
from portal.web.request import get_snapshot, now
from portal.web.security import external_url, public_url
from portal.web.views.claims import provider_info

bp = Blueprint("feeds", __name__, url_prefix="/feeds")

ATOM = "application/atom+xml; charset=utf-8"
ICS = "text/calendar; charset=utf-8"


def _words() -> dict:
    """Return the feed's words in the reader's language."""
    return {
        "services": _("Services"), "started": _("Started"), "resolved": _("Ended"),
        "eta": _("Expected restoration"), "status": labels.as_strings(labels.INCIDENT_STATUS),
        "service": labels.as_strings(labels.SERVICE), "kind": labels.as_strings(labels.INCIDENT_KIND),
    }


def _provider() -> str:
    """Return the provider's name (the ``PROVIDER_NAME`` setting, else the data's), or the site's."""
    name = provider_info()["name"]
    if name:
        return name
    info = get_snapshot().region
    return info.get("provider_ru" if lang() == "ru" else "provider") or info.get("provider") or _(
        "Coverage and outages")


def _atom(found: list[dict], title: str, site_url: str) -> Response:
    """Return an Atom response for these incidents."""
    body = feeds.incidents_atom(
        found, feed_id=request.base_url, title=title, site_url=site_url, self_url=request.url,
        base_url=public_url("/"), author=_provider(), language=lang(), tz=current_app.config["TIMEZONE"],
        zone_label=zone_name(short=True), words=_words(), now=now(),
    )
    return Response(body, content_type=ATOM)


@bp.get("/incidents.atom")
def incidents_atom():
    """Return every incident, most recently updated first."""
    found = answers.in_language(answers.incident_feed(get_snapshot().incidents, now()), lang())
    return _atom(found["incidents"], _("Outages and maintenance: %(provider)s", provider=_provider()),
                 external_url("incidents.index"))


@bp.get("/towns/<slug>.atom")
def town_atom(slug: str):
    """Return the incidents affecting one town."""
    found = answers.in_language(answers.incident_feed(get_snapshot().incidents, now(), town=slug), lang())
    return _atom(found["incidents"], _("Outages and maintenance in %(town)s", town=town_name(found["town"])),
                 external_url("incidents.index", town=found["town"]["slug"]))


@bp.get("/maintenance.ics")
def maintenance_ics():
    """Return every maintenance window as a calendar event."""
    snap = get_snapshot()
    items = answers.in_language(answers.maintenance_items(snap.incidents, now()), lang())
    body = feeds.maintenance_calendar(
        items, name=_("Planned maintenance: %(provider)s", provider=_provider()),
        prodid=f"-//{_provider()}//Coverage and outages//{lang().upper()}",
        domain=urlsplit(public_url("/")).hostname or "portal", base_url=public_url("/"),
        town_names={t.slug: town_name(t) for t in snap.towns}, words=_words(), now=now(),
    )
    return Response(body, content_type=ICS,
                    headers={"Content-Disposition": "inline; filename=maintenance.ics"})


@bp.get("/towns/<slug>.ics")
def town_ics(slug: str):
    """Return the maintenance windows affecting one town as a calendar."""
    snap = get_snapshot()
    found = answers.in_language(answers.town_calendar(snap.incidents, now(), slug), lang())
    slug = found["town"]["slug"]
    body = feeds.maintenance_calendar(
        found["items"], name=_("Planned maintenance in %(town)s", town=town_name(found["town"])),
        prodid=f"-//{_provider()}//Coverage and outages//{lang().upper()}",
        domain=urlsplit(public_url("/")).hostname or "portal", base_url=public_url("/"),
        town_names={t.slug: town_name(t) for t in snap.towns}, words=_words(), now=now(),
    )
    return Response(body, content_type=ICS, headers={"Content-Disposition": f"inline; filename={slug}.ics"})
