"""The portal's status in the shapes of Statuspage's /api/v2 (summary.json, status.json), for tools."""
from __future__ import annotations

from datetime import datetime

from portal.answers.incidents import service_summary
from portal.data import db
from portal.incidents.reads import IncidentReads

# Statuspage's words for the portal's: component status → page indicator and its description.
STATUSPAGE_INDICATOR = {
    "operational": ("none", "All Systems Operational"),
    "under_maintenance": ("maintenance", "Service Under Maintenance"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major System Outage"),
}
SERVICE_NAMES = {"internet": "Internet", "tv": "TV", "phone": "Phone"}


def statuspage_summary(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return the portal's status in the shape of Statuspage's /api/v2/summary.json.

    ``page`` is Statuspage's page object (id, name, url, time_zone) for this portal.
    """
    found = service_summary(incidents, now)
    page_id, stamp = page["id"], db.iso(now)
    components = [{
        "id": service, "name": SERVICE_NAMES.get(service, service), "status": s["status"],
        "created_at": None, "updated_at": stamp, "position": n, "description": None, "showcase": True,
        "start_date": None, "group_id": None, "page_id": page_id, "group": False,
        "only_show_if_degraded": False,
    } for n, (service, s) in enumerate(found["services"].items(), start=1)]
    by_service = {c["id"]: c for c in components}

    def incident(i: dict) -> dict:
        status = i["status"]
        impact = "maintenance" if i["kind"] == "maintenance" else "minor" if i["kind"] == "degraded" else (
            "critical" if any(by_service[s]["status"] == "major_outage" for s in i["services"]) else "major")
        affected = [by_service[s] for s in i["services"]]
        updates = [{
            "id": f"{i['id']}-{n}", "status": u["status"], "body": u["message"], "incident_id": str(i["id"]),
            "created_at": u["at"], "updated_at": u["at"], "display_at": u["at"],
        } for n, u in enumerate(i["updates"], start=1)]
        monitoring = [u["at"] for u in i["updates"] if u["status"] == "monitoring"]
        out = {
            "id": str(i["id"]), "name": i["title"], "status": status, "impact": impact,
            "created_at": i["updates"][0]["at"] if i["updates"] else i["started_at"],
            "updated_at": i["updated_at"], "started_at": i["started_at"],
            "monitoring_at": monitoring[-1] if monitoring else None, "resolved_at": i["resolved_at"],
            "shortlink": page["url"].rstrip("/") + i["url"], "page_id": page_id,
            # Statuspage lists an incident's updates newest first.
            "incident_updates": updates[::-1], "components": affected,
        }
        if i["kind"] == "maintenance":
            out.update(scheduled_for=i["scheduled_start"], scheduled_until=i["scheduled_end"])
        return out

    listed = [incident(i) for i in found["incidents"] if i["kind"] != "maintenance"]
    maintenances = [incident(i) for i in found["incidents"] if i["kind"] == "maintenance"]
    return {"page": {**page, "updated_at": stamp}, "components": components, "incidents": listed,
            "scheduled_maintenances": maintenances, "status": _indicator(found["status"])}


def statuspage_status(incidents: IncidentReads, now: datetime, page: dict) -> dict:
    """Return the page and its overall status indicator, as Statuspage's /api/v2/status.json."""
    worst = incidents.service_status(now)["status"]
    return {"page": {**page, "updated_at": db.iso(now)}, "status": _indicator(worst)}


def _indicator(status: str) -> dict:
    """Return Statuspage's overall {indicator, description} for the worst component status."""
    indicator, description = STATUSPAGE_INDICATOR[status]
    return {"indicator": indicator, "description": description}
