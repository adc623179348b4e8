"""Parsing of query values shared by pages and the JSON API."""
from __future__ import annotations

import math


class BadParam(ValueError):
    """A query value that cannot be used; the message names it and what would be right."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def parse_float(args, name: str, low: float, high: float) -> float:
    """Return ``args[name]`` as a finite float within [low, high], else raise BadParam."""
    raw = args.get(name)
    if raw is None or not raw.strip():
        raise BadParam(name, f"missing value for '{name}': give a number between {low:g} and {high:g}")
    try:
        value = float(raw.strip().replace(",", "."))
    except ValueError:
        raise BadParam(name, f"'{name}' must be a number between {low:g} and {high:g}, not {raw[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadParam(name, f"'{name}' must be a number between {low:g} and {high:g}, not {raw[:40]!r}")
    return value


def parse_lat_lon(args) -> tuple[float, float]:
    """Return (lat, lon) from the query string, validated."""
    return parse_float(args, "lat", -90, 90), parse_float(args, "lon", -180, 180)


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """Return a bbox 'minlon,minlat,maxlon,maxlat' as floats, None when absent."""
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    expected = "bbox must be minlon,minlat,maxlon,maxlat in degrees"
    if len(parts) != 4:
        raise BadParam("bbox", f"{expected}, not {raw[:80]!r}")
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError:
        raise BadParam("bbox", f"{expected}, not {raw[:80]!r}") from None
    values = (minlon, minlat, maxlon, maxlat)
    if not all(math.isfinite(v) for v in values) or not (
        -180 <= minlon <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90
    ):
        raise BadParam("bbox", f"{expected} with min ≤ max, not {raw[:80]!r}")
    return values


def parse_choice(args, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    """Return ``args[name]`` if it is one of ``choices`` (or the default when absent)."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadParam(name, f"unknown {name} {raw[:40]!r}; expected one of {', '.join(choices)}")
    return raw
