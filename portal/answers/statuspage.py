"""The portal's status in the shapes of Statuspage's public /api/v2, for tools that read Statuspage.

Eight answers, as Statuspage documents them: ``summary.json``, ``status.json``, ``components.json``,
``incidents.json`` (the 50 most recent), ``incidents/unresolved.json``,
``scheduled-maintenances.json`` (the 50 most recent), ``scheduled-maintenances/upcoming.json`` and
``scheduled-maintenances/active.json``. Each service is a component. Its ``updated_at`` is the last
change of an incident affecting it (a staff write, or a maintenance window beginning or ending),
its ``created_at`` the first; a component no incident ever touched has neither (null). Each
incident update carries ``affected_components`` with the status it moved the components from and to.

Statuspage has no "cancelled" maintenance status: a window called off before it began is
``completed``, its cancellation notice the last update, and it is never upcoming nor active.
"""
from __future__ import annotations

from datetime import datetime

from portal.answers.incidents import service_summary
from portal.data import db
from portal.incidents.reads import IncidentReads
from portal.incidents.records import SERVICES, Record

# Statuspage's words for the portal's: component status → page indicator and its description.
STATUSPAGE_INDICATOR = {
    "operational": ("none", "All Systems Operational"),
    "under_maintenance": ("maintenance", "Service Under Maintenance"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major System Outage"),
}
SERVICE_NAMES = {"internet": "Internet", "tv": "TV", "phone": "Phone"}
# Statuspage lists this many of the most recent incidents or maintenances.
RECENT = 50
# The portal's maintenance statuses in Statuspage's words (it has no "cancelled").
MAINTENANCE_STATUS = {"scheduled": "scheduled", "in_progress": "in_progress", "completed": "completed",
                      "cancelled": "completed"}
# Timeline statuses while which an incident holds its components at its severity.
_HOLDING = {"investigating", "identified", "monitoring", "in_progress"}


def statuspage_summary(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return the portal's status in the shape of Statuspage's /api/v2/summary.json.

    ``page`` is Statuspage's page object (id, name, url, time_zone) for this portal.
    """
    found = service_summary(incidents, now)
    components = _components(incidents, now, page, found["services"])
    active = [incidents.get(i["id"]) for i in found["incidents"]]
    return {"page": _page(incidents, now, page), "components": components,
            "incidents": [_incident(incidents, r, now, page, components)
                          for r in active if r.kind != "maintenance"],
            "scheduled_maintenances": [_incident(incidents, r, now, page, components)
                                       for r in active if r.kind == "maintenance"],
            "status": _indicator(found["status"])}


def statuspage_status(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return the page and its overall status indicator, as Statuspage's /api/v2/status.json."""
    worst = incidents.service_status(now)["status"]
    return {"page": _page(incidents, now, page), "status": _indicator(worst)}


def statuspage_components(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return the page and its components (one per service), as Statuspage's /api/v2/components.json."""
    services = incidents.service_status(now)["services"]
    return {"page": _page(incidents, now, page), "components": _components(incidents, now, page, services)}


def statuspage_incidents(incidents: IncidentReads, now: datetime, page: dict,
                         unresolved: bool = False) -> dict:
    """Return the 50 most recent incidents (or every unresolved one), newest first, as incidents.json."""
    # Every record, unordered: the list is sorted by start below, so select()'s ordering is not needed.
    recs = incidents.select(now, "active") if unresolved else incidents.records
    recs = [r for r in recs if r.kind != "maintenance" and r.started_at <= now]
    recs.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    if not unresolved:
        recs = recs[:RECENT]
    components = _components(incidents, now, page, incidents.service_status(now)["services"])
    return {"page": _page(incidents, now, page),
            "incidents": [_incident(incidents, r, now, page, components) for r in recs]}


def statuspage_maintenances(incidents: IncidentReads, now: datetime, page: dict, which: str = "all") -> dict:
    """Return maintenance windows as /api/v2/scheduled-maintenances.json does, newest first.

    ``which``: ``all`` (the 50 most recent, any status), ``upcoming`` (still scheduled) or
    ``active`` (in progress).
    """
    wanted = {"all": None, "upcoming": "scheduled", "active": "in_progress"}
    if which not in wanted:
        raise ValueError(f"unknown maintenance listing {which!r}; expected one of {', '.join(wanted)}")
    recs = incidents.records if which == "all" else incidents.select(now, "active")
    recs = [r for r in recs if r.kind == "maintenance"]
    if wanted[which] is not None:
        recs = [r for r in recs if r.status(now) == wanted[which]]
    recs.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    if which == "all":
        recs = recs[:RECENT]
    components = _components(incidents, now, page, incidents.service_status(now)["services"])
    return {"page": _page(incidents, now, page),
            "scheduled_maintenances": [_incident(incidents, r, now, page, components) for r in recs]}


def _page(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return Statuspage's page object, updated when an incident last changed (else now)."""
    return {**page, "updated_at": db.iso(incidents.last_change(now) or now)}


def _components(incidents: IncidentReads, now: datetime, page: dict, services: dict) -> list[dict]:
    """Return one Statuspage component per service, with its status and when an incident last changed it."""
    return [{
        "id": service, "name": SERVICE_NAMES.get(service, service), "status": services[service]["status"],
        "created_at": db.iso(incidents.first_change(service)),
        "updated_at": db.iso(incidents.last_change(now, service)),
        "position": n, "description": None, "showcase": True, "start_date": None, "group_id": None,
        "page_id": page["id"], "group": False, "only_show_if_degraded": False,
    } for n, service in enumerate(SERVICES, start=1)]


def _incident(incidents: IncidentReads, rec: Record, now: datetime, page: dict,
              components: list[dict]) -> dict:
    """Return one incident or maintenance window as Statuspage shows it."""
    severity = incidents.severity(rec)
    maintenance = rec.kind == "maintenance"
    status = rec.status(now)
    if maintenance:
        status, impact = MAINTENANCE_STATUS[status], "maintenance"
    else:
        impact = {"degraded_performance": "minor", "partial_outage": "major"}.get(severity, "critical")
    updates = _updates(rec, now, severity)
    monitoring = [u["created_at"] for u in updates if u["status"] == "monitoring"]
    ended = rec.end(now)
    out = {
        "id": str(rec.id), "name": rec.title, "status": status, "impact": impact,
        # Both languages; the JSON gives ``name`` in ``?lang=``'s (``answers.in_language``).
        "name_by_lang": dict(rec.title_by_lang),
        # Created when announced (its first update); updated at its last change by ``now``.
        "created_at": updates[0]["created_at"] if updates else db.iso(rec.created_at or rec.started_at),
        "updated_at": db.iso(rec.last_change(now)),
        "started_at": db.iso(rec.started_at), "monitoring_at": monitoring[-1] if monitoring else None,
        "resolved_at": db.iso(ended), "shortlink": page["url"].rstrip("/") + f"/incidents/{rec.id}",
        "page_id": page["id"],
        # Statuspage lists an incident's updates newest first.
        "incident_updates": updates[::-1],
        "components": [c for c in components if c["id"] in rec.services],
    }
    if maintenance:
        out.update(scheduled_for=db.iso(rec.started_at), scheduled_until=db.iso(rec.scheduled_end))
    return out


def _updates(rec: Record, now: datetime, severity: str) -> list[dict]:
    """Return the timeline as Statuspage updates, oldest first, each with what it did to the components."""
    found, current = [], "operational"
    for n, item in enumerate(rec.timeline(now), start=1):
        new = severity if item["status"] in _HOLDING else "operational"
        status = MAINTENANCE_STATUS.get(item["status"], item["status"]) if rec.kind == "maintenance" \
            else item["status"]
        at = db.iso(item["at"])
        found.append({
            "id": f"{rec.id}-{n}", "status": status, "body": item["message"], "incident_id": str(rec.id),
            "body_by_lang": item["message_by_lang"],
            "created_at": at, "updated_at": at, "display_at": at,
            "affected_components": [{"code": s, "name": SERVICE_NAMES.get(s, s), "old_status": current,
                                     "new_status": new} for s in rec.services],
        })
        current = new
    return found


def _indicator(status: str) -> dict:
    """Return Statuspage's overall {indicator, description} for the worst component status."""
    indicator, description = STATUSPAGE_INDICATOR[status]
    return {"indicator": indicator, "description": description}
