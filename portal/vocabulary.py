"""The words the portal shows for its vocabulary, in English, marked for the catalog.

One home for the names of technologies, services, incident kinds and statuses, directions and
time zones, and for how a duration is written. Pages translate them with Flask-Babel
(``portal.web.labels``), e-mails with the catalog of the subscriber's language
(``portal.listening.messages``), staff scripts show them in English. Nothing here imports
Flask.
"""
from __future__ import annotations

from typing import Callable


def N_(text: str) -> str:  # noqa: N802 -- the marker pybabel extracts
    """Mark a string for the catalog; it is translated where it is shown."""
    return text


def english(text: str, **values) -> str:
    """Fill in ``%(name)s`` values without translating (staff scripts, logs)."""
    return text % values if values else text


TECHNOLOGY = {
    "fiber": N_("Fiber"),
    "cable": N_("Cable (DOCSIS)"),
    "dsl": N_("DSL (phone line)"),
    "wireless": N_("Fixed wireless"),
}
# "To the north" as one phrase: Russian needs the dative after "к" (к северу), not the bare label.
DIRECTION_TO = {
    "N": N_("to the north"), "NE": N_("to the north-east"), "E": N_("to the east"),
    "SE": N_("to the south-east"), "S": N_("to the south"), "SW": N_("to the south-west"),
    "W": N_("to the west"), "NW": N_("to the north-west"),
}
SERVICE = {"internet": N_("Internet"), "tv": N_("TV"), "phone": N_("Phone")}
INCIDENT_KIND = {"outage": N_("Outage"), "degraded": N_("Degraded service"),
                 "maintenance": N_("Planned maintenance")}
INCIDENT_STATUS = {
    "investigating": N_("Investigating"), "identified": N_("Identified"), "monitoring": N_("Monitoring"),
    "resolved": N_("Resolved"), "scheduled": N_("Scheduled"), "in_progress": N_("In progress"),
    "completed": N_("Completed"), "cancelled": N_("Cancelled"),
}
ZONE_SHORT = {"Europe/Moscow": N_("MSK")}
ZONE_LONG = {"Europe/Moscow": N_("Moscow time (UTC+3)")}


def duration(seconds, gettext: Callable[..., str] = english) -> str:
    """Write a number of seconds as '19 h 50 min' or '5 d 19 h', translated by ``gettext``."""
    _ = gettext
    minutes = max(0, int(seconds or 0)) // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return _("%(d)s d %(h)s h", d=days, h=hours) if hours else _("%(d)s d", d=days)
    if hours:
        return _("%(h)s h %(m)s min", h=hours, m=mins) if mins else _("%(h)s h", h=hours)
    return _("%(m)s min", m=mins) if mins else _("less than a minute")
