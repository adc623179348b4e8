"""User-facing names of the vocabulary (technologies, statuses, directions), translated."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from portal import vocabulary


def _lazy(words: dict) -> dict:
    """Return the vocabulary's English words as strings translated when shown."""
    return {k: _l(v) for k, v in words.items()}


TECHNOLOGY = _lazy(vocabulary.TECHNOLOGY)
DIRECTION_TO = _lazy(vocabulary.DIRECTION_TO)
SERVICE = _lazy(vocabulary.SERVICE)


def as_strings(mapping: dict) -> dict[str, str]:
    """Return a label mapping with the lazy strings resolved in the current language."""
    return {k: str(v) for k, v in mapping.items()}


COLUMN = {
    "name": _l("Town"),
    "population": _l("Population"),
    "best": _l("Best technology"),
    "fiber_share": _l("Fiber share"),
}

INCIDENT_KIND = _lazy(vocabulary.INCIDENT_KIND)
INCIDENT_STATUS = _lazy(vocabulary.INCIDENT_STATUS)
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
