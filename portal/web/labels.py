"""User-facing names of the vocabulary (technologies, statuses, directions), translated."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

TECHNOLOGY = {
    "fiber": _l("Fiber"),
    "cable": _l("Cable (DOCSIS)"),
    "dsl": _l("DSL (phone line)"),
    "wireless": _l("Fixed wireless"),
}
# "To the north" as one phrase: Russian needs the dative after "к" (к северу), not the bare label.
DIRECTION_TO = {
    "N": _l("to the north"), "NE": _l("to the north-east"), "E": _l("to the east"),
    "SE": _l("to the south-east"), "S": _l("to the south"), "SW": _l("to the south-west"),
    "W": _l("to the west"), "NW": _l("to the north-west"),
}
SERVICE = {"internet": _l("Internet"), "tv": _l("TV"), "phone": _l("Phone")}


def as_strings(mapping: dict) -> dict[str, str]:
    """Return a label mapping with the lazy strings resolved in the current language."""
    return {k: str(v) for k, v in mapping.items()}

COLUMN = {
    "name": _l("Town"),
    "population": _l("Population"),
    "best": _l("Best technology"),
    "fiber_share": _l("Fiber share"),
}

INCIDENT_KIND = {"outage": _l("Outage"), "degraded": _l("Degraded service"), "maintenance": _l("Planned maintenance")}
INCIDENT_STATUS = {
    "investigating": _l("Investigating"), "identified": _l("Identified"), "monitoring": _l("Monitoring"),
    "resolved": _l("Resolved"), "scheduled": _l("Scheduled"), "in_progress": _l("In progress"),
    "completed": _l("Completed"), "cancelled": _l("Cancelled"),
}
SERVICE_STATUS = {
    "operational": _l("working normally"), "degraded_performance": _l("degraded"),
    "partial_outage": _l("partial outage"), "major_outage": _l("major outage"),
    "under_maintenance": _l("under maintenance"),
}
DAY_STATUS = {
    "ok": _l("no outage"), "partial": _l("partial outage or degraded service"), "down": _l("outage"),
    "no_data": _l("no data"),
}

# Timeline lines the portal writes itself (availability.py adds them to maintenance windows).
GENERATED_MESSAGE = {
    "The maintenance window began.": _l("The maintenance window began."),
    "The maintenance window ended.": _l("The maintenance window ended."),
}
