"""What an incident write accepts: each value staff (or the demo build) give, checked and normalised.

Every function returns the value as it is stored, or raises ``IncidentError`` naming the bad
value and saying what to give instead; ``portal.incidents.writes`` calls them all before it
writes anything. Texts come in the region's language (Russian) and English
(``portal.incidents.language``): ``texts`` returns ``{"ru": ..., "en": ...}``, ``columns`` what the
two columns of a text hold, ``said`` what the audit log records.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import shapely
import sqlalchemy as sa

from portal.coverage.places import Gazetteer
from portal.data import db, layers
from portal.data import statements as sql
from portal.data.text import BadText, check_text
from portal.incidents import language
from portal.incidents.records import SERVICES, IncidentError, Record, check_service, load_records

# Staff and server clocks disagree by a little; beyond this, an event has not happened yet.
FUTURE_TOLERANCE = timedelta(minutes=5)
_LATIN = re.compile("[A-Za-z]")


def text(name, value, multiline: bool = False) -> str:
    """Return the text normalised (``portal.data.text``), refusing an empty one or a control character."""
    if not isinstance(value, str) or not value.strip():
        raise IncidentError(f"empty {name}; give a non-empty {name}")
    try:
        value = check_text(name, value, multiline=multiline)
    except BadText as exc:
        raise IncidentError(str(exc)) from None
    if not value:
        raise IncidentError(f"empty {name}; give a non-empty {name}")
    return value


def texts(name, given, english=None, *, multiline: bool = False, required: bool = False) -> dict | None:
    """Return ``{"ru": ..., "en": ...}`` from the text in the region's language and the English one.

    ``given`` without a Cyrillic letter is English (``language.text_language``); then an English
    text given beside it is refused, naming both. None when neither is given (and not required).
    """
    found = {"ru": None, "en": None}
    if required or (isinstance(given, str) and given.strip()):
        given = text(name, given, multiline)
        found[language.text_language(given)] = given
    if english is not None:
        english = text(f"{name}-en", english, multiline)
        if language.text_language(english) == "ru" and not _LATIN.search(english):
            raise IncidentError(f"{name}-en {english!r} is written in Cyrillic; give the English text as"
                                f" {name}-en and the Russian one as {name}")
        if found["en"] is not None:
            raise IncidentError(f"{name} {found['en']!r} has no Cyrillic letter, so it is taken as English,"
                                f" and {name}-en gives English too; give the Russian text as {name} and the"
                                f" English one as {name}-en")
        found["en"] = english
    return found if found["ru"] or found["en"] else None


def message(message, message_en, title: dict) -> dict:
    """Return the first update's texts: the messages given, else the title's."""
    if message is None and message_en is None:
        return dict(title)
    return texts("message", message, message_en, multiline=True, required=message is not None or not
                  message_en)


def columns(found: dict | None) -> tuple[str | None, str | None]:
    """Return what the two columns of a text hold: the first text (Russian if given), English beside it."""
    if found is None:
        return None, None
    return language.first(found), found["en"] if found["ru"] else None


def said(name: str, found: dict | None) -> dict:
    """Return a text for the audit log: ``{name: first}``, and ``{name}_en`` beside a Russian one."""
    first, english = columns(found)
    return {name: first, **({f"{name}_en": english} if english else {})}


def services(services) -> list[str]:
    """Return the services in canonical order, refusing unknown ones."""
    if isinstance(services, str):
        services = [services]
    services = list(services or ())
    if not services:
        raise IncidentError(f"no service given; expected one or more of {', '.join(SERVICES)}")
    for s in services:
        check_service(s)
    return [s for s in SERVICES if s in services]


def towns(conn, towns) -> list[str]:
    """Return the sorted slugs, refusing any not in the live towns layer (with suggestions)."""
    if isinstance(towns, str):
        towns = [towns]
    # Slugs only: parsing every extent per write made bulk writes quadratic in the towns.
    live = layers.live_layer_ids(conn)["towns"]
    known = {r[0] for r in sql.run(conn, _slugs(), layer_id=live)}
    slugs = list(dict.fromkeys(towns or ()))
    for slug in slugs:
        if slug not in known:
            # Only a refusal needs the names: the towns are read whole for the suggestions alone.
            error = Gazetteer(layers.load_towns(conn, live)).unknown(str(slug))
            hint = "" if error.suggestions else "; give a slug of the live towns layer"
            raise IncidentError(f"{error}{hint}") from error
    return sorted(slugs)


def area(area):
    """Return the area polygon, refusing anything that is not a valid lon/lat polygon."""
    if area is None:
        return None
    if not isinstance(area, shapely.Geometry):
        raise IncidentError(f"area must be a polygon geometry, not {type(area).__name__}")
    if area.geom_type not in ("Polygon", "MultiPolygon"):
        raise IncidentError(f"area is a {area.geom_type}; expected a Polygon or MultiPolygon")
    if area.is_empty:
        raise IncidentError("area is empty; draw a polygon around the affected place")
    if not area.is_valid:
        raise IncidentError(f"area is not a valid polygon ({shapely.is_valid_reason(area)}); fix it, "
                            "e.g. remove the self-crossing")
    minx, miny, maxx, maxy = area.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise IncidentError(f"area bounds {area.bounds} are not longitude/latitude; give WGS 84 (EPSG:4326)")
    return area


def time(name, value) -> datetime | None:
    """Return an aware datetime to the second, refusing naive ones."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise IncidentError(f"{name} {value!r} has no time zone; give an aware datetime")
    return value.replace(microsecond=0)


def past(name, value, now) -> datetime:
    """Return the event time (default now), refusing one in the future."""
    value = time(name, value) or now.replace(microsecond=0)
    if value > now + FUTURE_TOLERANCE:
        raise IncidentError(f"{name} {db.iso(value)} is in the future (now {db.iso(now)}); record events "
                            "that have happened")
    return value


def after_timeline(rec: Record, at: datetime, now: datetime) -> datetime:
    """Refuse changes to a closed incident or dated before its start or last update."""
    if rec.resolved_at is not None:
        word = "cancelled" if rec.cancelled else "completed" if rec.kind == "maintenance" else "resolved"
        raise IncidentError(f"incident #{rec.id} is already {word} (at {db.iso(rec.resolved_at)}); "
                            "open a new incident instead")
    if rec.kind == "maintenance" and rec.status(now) == "completed":
        raise IncidentError(f"maintenance #{rec.id} already completed at {db.iso(rec.scheduled_end)}")
    if rec.kind != "maintenance" and at < rec.started_at:
        raise IncidentError(f"at {db.iso(at)} is before the start {db.iso(rec.started_at)} of #{rec.id}")
    last = rec.updates[-1]["at"] if rec.updates else rec.started_at
    if at < last:
        raise IncidentError(f"at {db.iso(at)} is before the previous update {db.iso(last)} of #{rec.id}")
    return at


def record(conn, incident_id) -> Record:
    """Return the stored incident, refusing an unknown id."""
    try:
        incident_id = int(incident_id)
    except (TypeError, ValueError):
        raise IncidentError(f"incident id {incident_id!r} is not a number") from None
    found = load_records(conn, [incident_id])
    if not found:
        raise IncidentError(f"no incident #{incident_id}; see the list of incidents for ids")
    return found[0]


def wkt(area) -> str | None:
    """Return the area as WKT for the audit log."""
    return None if area is None else shapely.to_wkt(area, rounding_precision=7)


@sql.collection
def _slugs() -> sql.Statement:
    """Return the statement reading a towns layer's slugs (``towns``), on every engine."""
    towns = sql.table("towns")
    return sql.Statement(sa.select(towns.c.slug).where(towns.c.layer_id == sa.bindparam("layer_id")))
