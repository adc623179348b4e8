"""Availability: the published rule and its arithmetic over the intervals of a town's incidents.

``IncidentReads.availability`` (``portal.incidents.reads``) picks the intervals of one
service in one town; this module turns them into the day strip and the percentage.

Availability rule (published on the pages):

- Downtime of a service in a town is the time during which an *outage* of that
  service was declared for the whole town (the town is listed on the incident).
  Overlapping outages are counted once (the union of their intervals), from
  the start to the resolution, or to now while the outage lasts.
- An outage of part of a town (an area: a building, a street), and degraded
  service, do not count as downtime: they mark the day *partial*.
- Planned maintenance does not count as downtime and does not colour the day;
  its time is reported as ``maintenance_s``.
- A day is a calendar day in the region's time zone. Its status is ``down`` when
  it had any downtime, ``partial`` when it had a partial outage or degraded
  service, ``ok`` otherwise, and ``no_data`` when it lies wholly before the
  date monitoring began (``since``).
- ``percent`` = 100 × (1 − downtime ÷ period), where the period is the last
  N × 24 hours up to now (from ``since`` if that is later).
- Availability is published only for a service offered in the town: one that live
  coverage of any technology reaches (every service is sold over every technology).
  Where no live coverage reaches the town, the page says "no service here" instead.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.data import db
from portal.incidents.records import SERVICES

AVAILABILITY_RULE = __doc__[__doc__.index("Availability rule"):].strip()


def offered_services(live_technologies) -> list[str]:
    """Return the services a place has, given the technologies whose live coverage reaches it (the rule)."""
    return list(SERVICES) if any(True for _ in live_technologies) else []


def day_strip(down: list, partial: list, maintenance: list, now: datetime, days: int, zone: ZoneInfo,
              since: datetime | None = None) -> dict:
    """Return the last ``days`` local days and the percentage from (start, end) intervals (see the rule).

    ``down``: whole-town outages; ``partial``: outages of part of the town and degraded service;
    ``maintenance``: maintenance windows. Intervals may overlap.
    """
    down, partial, maintenance = _merge(down), _merge(down + partial), _merge(maintenance)
    today = now.astimezone(zone).date()
    strip = []
    for n in range(days - 1, -1, -1):
        date = today - timedelta(days=n)
        lo = datetime.combine(date, time(0), zone)
        hi = min(datetime.combine(date + timedelta(days=1), time(0), zone), now)
        if since is not None and hi <= since:
            strip.append({"date": date.isoformat(), "down_s": 0, "partial_s": 0, "maintenance_s": 0,
                          "status": "no_data"})
            continue
        lo = max(lo, since) if since is not None else lo
        down_s = _measure(down, lo, hi)
        partial_s = _measure(partial, lo, hi) - down_s
        status = "down" if down_s else "partial" if partial_s else "ok"
        strip.append({"date": date.isoformat(), "down_s": down_s, "partial_s": partial_s,
                      "maintenance_s": _measure(maintenance, lo, hi), "status": status})
    start = now - timedelta(days=days)
    start = max(start, since) if since is not None else start
    period = int((now - start).total_seconds())
    down_s = _measure(down, start, now)
    return {
        "from": db.iso(start), "to": db.iso(now), "period_s": max(period, 0), "down_s": down_s,
        "percent": 100 * (1 - down_s / period) if period > 0 else None, "days": strip,
    }


def _merge(spans):
    """Return the union of (start, end) intervals as sorted, disjoint intervals."""
    merged = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _measure(spans, lo, hi) -> int:
    """Return the seconds of disjoint intervals that fall within [lo, hi]."""
    total = sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in spans)
    return int(round(total))
