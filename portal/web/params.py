"""Parsing of query values shared by pages and the JSON API; refusals are in the visitor's language."""
from __future__ import annotations

import math
import re
from typing import NamedTuple

from flask_babel import gettext as _

from portal.incidents.reads import LISTINGS
from portal.incidents.records import SERVICES

# An id in a path: ASCII digits only (``int`` would also take "١" or "1_0"), no longer than any id.
_ID = re.compile(r"[0-9]{1,12}")


class BadParam(ValueError):
    """A query value that cannot be used; the message names it and what would be right."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def _shown(raw: str) -> str:
    """Return a user's value clipped for quoting in a message."""
    return repr(raw[:40])


def parse_float(args, name: str, low: float, high: float) -> float:
    """Return ``args[name]`` as a finite float within [low, high], else raise BadParam."""
    raw = args.get(name)
    try:
        value = float(raw)  # the common case; float() itself allows surrounding spaces
    except (TypeError, ValueError):
        if raw is None or not raw.strip():
            raise BadParam(name, _("missing value for '%(name)s': give a number between %(low)s and %(high)s",
                                   name=name, low=f"{low:g}", high=f"{high:g}")) from None
        try:
            value = float(raw.strip().replace(",", "."))  # a decimal comma, as typed in Russian
        except ValueError:
            value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise BadParam(name, _("'%(name)s' must be a number between %(low)s and %(high)s, not %(value)s",
                               name=name, low=f"{low:g}", high=f"{high:g}", value=_shown(raw)))
    return value


def parse_lat_lon(args) -> tuple[float, float]:
    """Return (lat, lon) from the query string, validated."""
    return parse_float(args, "lat", -90, 90), parse_float(args, "lon", -180, 180)


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """Return a bbox 'minlon,minlat,maxlon,maxlat' as floats, None when absent."""
    if raw is None or raw == "":
        return None
    refusal = BadParam("bbox", _("'bbox' must be minlon,minlat,maxlon,maxlat in degrees with min ≤ max,"
                                 " not %(value)s", value=repr(raw[:80])))
    parts = raw.split(",")
    if len(parts) != 4:
        raise refusal
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError:
        raise refusal from None
    values = (minlon, minlat, maxlon, maxlat)
    if not all(math.isfinite(v) for v in values) or not (
        -180 <= minlon <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90
    ):
        raise refusal
    return values


def parse_choice(args, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    """Return ``args[name]`` if it is one of ``choices`` (or the default when absent)."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadParam(name, _("unknown %(name)s %(value)s; expected one of %(choices)s",
                               name=name, value=_shown(raw), choices=", ".join(choices)))
    return raw


def parse_service(args) -> str | None:
    """Return ``args["service"]``, one of the services, or None when absent."""
    return parse_choice(args, "service", SERVICES, None)


def parse_listing(args) -> str:
    """Return ``args["status"]``, which incidents a list holds: active (the default), resolved or all."""
    return parse_choice(args, "status", LISTINGS, "active")


def parse_town(args) -> str | None:
    """Return ``args["town"]``, a town's slug, or None when absent (the answers refuse an unknown one)."""
    return args.get("town") or None


def town_named(gazetteer, name: str):
    """Return the one town the search box takes ``name`` for, or None when it is none or several.

    What the search page goes straight to: a slug, a name that clearly names one town (either
    language, alternate names, typos; as staff scripts resolve it), or the only search match.
    """
    town = gazetteer.get(name)
    if town is not None:
        return town
    found = gazetteer.search(name, limit=2)
    if not found:
        return None
    try:
        return gazetteer.resolve(name)
    except LookupError:
        return found[0] if len(found) == 1 else None


def parse_town_name(args, gazetteer) -> str | None:
    """Return the slug of the town ``args["town"]`` names as the search box reads it, None when absent.

    A name no town has, or that fits several equally, raises UnknownTown with suggestions (a 404).
    """
    name = (args.get("town") or "").strip()
    if not name:
        return None
    town = town_named(gazetteer, name)
    if town is None:
        raise gazetteer.unknown(name)
    return town.slug


def parse_id(raw: str) -> int | None:
    """Return an id from a path as a number, or None when it is not one (no such page: a 404)."""
    return int(raw) if _ID.fullmatch(raw) else None


class Page(NamedTuple):
    """The part of a list that ?page= asks for: ``items[start:stop]``."""

    number: int | None  # None: "all", every item on one page
    pages: int
    start: int
    stop: int


def parse_page(args, count: int, size: int) -> Page:
    """Return which page of ``count`` items, ``size`` a page, ``args["page"]`` asks for (1, or "all")."""
    pages = max(1, -(-count // size))
    raw = args.get("page")
    if raw is None or raw == "":
        raw = "1"
    if raw == "all":
        return Page(None, pages, 0, count)
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= pages:
        raise BadParam("page", _("'page' must be a page number from 1 to %(pages)s or 'all', not %(value)s",
                                 pages=pages, value=_shown(raw)))
    number = int(raw)
    return Page(number, pages, (number - 1) * size, min(count, number * size))
