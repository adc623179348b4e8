"""The incidents of one data revision, read once and indexed for what pages, API, feeds and scripts ask.

Pages, the API and feeds ask about incidents on every request; reading and parsing every
incident each time cost milliseconds at 10,000 incidents. ``IncidentReads`` is built once
per data revision (``db.data_key``: every write bumps it) from one read of the incident
tables and the towns the live snapshot already holds (``portal.coverage.snapshot`` keeps
it beside the coverage index). It is indexed by when incidents end, which towns they list
and where their areas lie, so a question touches only the few incidents that can answer it;
the answers are those of testing every record (``Record`` in ``portal.incidents.records``).

The answers are records, ordered: ongoing first (latest start first), then upcoming
(soonest first), then history (latest end first). ``portal.answers`` turns them into
the dicts pages, JSON and feeds show.
"""
from __future__ import annotations

import math
import sqlite3
import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from portal.config import DEFAULTS
from portal.coverage.locate import PolygonIndex
from portal.coverage.places import Gazetteer
from portal.data import db, layers
from portal.incidents import availability
from portal.incidents.records import SERVICES, IncidentError, Record, check_service, load_records

LISTINGS = ("active", "resolved", "all")
# Service status, least to most severe: the worst one applies.
SEVERITY = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")


class IncidentReads:
    """Every incident of one data revision with the live towns, indexed for the questions asked of them."""

    def __init__(self, records: list[Record], towns: Gazetteer, deadline_hours: dict, key=None):
        """Index the records once: end times, listed towns, an area tree.

        ``towns`` is the live towns' gazetteer (names, extents, suggestions); ``deadline_hours``
        the contract's restoration deadlines per service; ``key`` what names the data read.
        """
        self.key = key
        self.records = records
        self.towns = towns
        self.deadline_hours = dict(deadline_hours)
        self._by_id = {r.id: r for r in records}
        # A record is active while its end (resolution, or a maintenance window's end) is later
        # than now, or while it has none: Record.end() and status() say the same.
        ends = [r.last_end() for r in records]
        self._end_ts = np.array([e.timestamp() if e else math.inf for e in ends], dtype=float)
        self._by_town: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            for slug in r.towns:
                self._by_town.setdefault(slug, []).append(i)
        self._area_owner = np.array([i for i, r in enumerate(records) for _ in r.areas], dtype=np.intp)
        self._area_geoms = np.array([a for r in records for a in r.areas] or [], dtype=object)
        self._area_tree = shapely.STRtree(self._area_geoms)
        shapely.prepare(self._area_geoms)
        self._extents: dict = {}
        for t in towns.towns:
            self._extents.setdefault(t.slug, t.geometry)  # as the gazetteer: a repeated slug keeps the first
        self._town_tree: tuple | None = None
        self._affected: dict[int, frozenset] = {}
        self._open: _OpenAreas | None = None
        self._moments: dict | None = None
        self._lock = threading.Lock()

    @classmethod
    def read(cls, conn: sqlite3.Connection, towns: Gazetteer | None = None,
             deadline_hours: dict = DEFAULTS["RESTORE_DEADLINE_HOURS"]) -> IncidentReads:
        """Read the incidents from ``conn``, with the live towns unless given."""
        # The key is read first: the records are at least as new as the key they get.
        key = db.data_key(db.get_meta(conn))
        records = load_records(conn)
        if towns is None:
            towns = Gazetteer(layers.load_towns(conn))
        return cls(records, towns, deadline_hours, key)

    # --- which incidents ---------------------------------------------------------------------------

    def get(self, incident_id: int) -> Record | None:
        """Return the incident with this id, or None."""
        return self._by_id.get(incident_id)

    def select(self, now: datetime, listing: str = "all", *, town: str | None = None,
               service: str | None = None) -> list[Record]:
        """Return the incidents ``listing`` names (active, resolved, all), optionally of a town or service."""
        if listing not in LISTINGS:
            raise IncidentError(f"unknown status {listing!r}; expected one of {', '.join(LISTINGS)}")
        if service is not None:
            check_service(service)
        if town is not None:
            extent = self._extents.get(town)
            recs = [r for r in self._town_candidates(town, extent) if r.affects_town(town, extent)]
        elif listing == "active":
            recs = [self.records[i] for i in np.flatnonzero(self._end_ts > now.timestamp()).tolist()]
        else:
            recs = self.records
        if service is not None:
            recs = [r for r in recs if service in r.services]
        if listing != "all":
            recs = [r for r in recs if r.active(now) == (listing == "active")]
        return _ordered(recs, now)

    def active(self, now: datetime) -> list[Record]:
        """Return the ongoing incidents and the maintenance not yet over (upcoming included)."""
        return self.select(now, "active")

    def history(self, now: datetime, *, town: str | None = None, service: str | None = None) -> list[Record]:
        """Return the resolved incidents and completed maintenance, latest end first."""
        return self.select(now, "resolved", town=town, service=service)

    def affecting_town(self, slug: str, now: datetime) -> list[Record]:
        """Return the active incidents and maintenance that list the town or overlap its extent."""
        return self.select(now, "active", town=slug)

    def affecting_point(self, lat: float, lon: float, now: datetime,
                        town_slug: str | None = None) -> list[Record]:
        """Return the active incidents and maintenance whose area or listed towns cover the point.

        ``town_slug``, the town the caller found the point in, counts as covering it.
        """
        lon, lat = float(lon), float(lat)
        # Candidates: records whose area meets the point, listing a town whose extent meets it,
        # or listing the caller's town; the exact test below is the one a full scan would make.
        still_open = self._open_areas(now)
        cand = still_open.records_at(lon, lat)
        cand.update(still_open.listing.get(town_slug, ()))
        if not cand:
            return []
        point = shapely.Point(lon, lat)
        stamp = now.timestamp()
        recs = [self.records[i] for i in sorted(cand) if self._end_ts[i] > stamp]
        recs = [r for r in recs if r.active(now) and r.affects_point(point, self._extents, town_slug)]
        return _ordered(recs, now)

    # --- what an incident touches ------------------------------------------------------------------

    def affected_towns(self, rec: Record) -> frozenset:
        """Return the slugs of the live towns the incident affects (listed, or sharing an area's interior)."""
        found = self._affected.get(rec.id)
        if found is None:
            slugs = {s for s in rec.towns if s in self._extents}
            if rec.areas:
                names, geoms, tree = self._towns_tree()
                for area in rec.areas:
                    for i in tree.query(area).tolist():
                        if shapely.relate_pattern(area, geoms[i], "T********"):
                            slugs.add(names[i])
            found = self._affected[rec.id] = frozenset(slugs)
        return found

    def area(self, rec: Record):
        """Return where the incident applies (its areas and listed towns' extents as one shape), or None."""
        shapes = rec.areas + [self._extents[s] for s in rec.towns if s in self._extents]
        union = shapely.union_all(shapes) if shapes else None
        return None if union is None or union.is_empty else union

    def deadlines(self, rec: Record, now: datetime) -> dict:
        """Return the incident's restoration deadline per service at ``now`` (see ``Record.deadlines``)."""
        return rec.deadlines(now, self.deadline_hours)

    # --- what it means for the service -------------------------------------------------------------

    def service_status(self, now: datetime) -> dict:
        """Return each service's status derived from the active incidents, the worst, and those incidents.

        An outage is a ``major_outage`` when the outages of a service together affect at least half
        of the towns, else a ``partial_outage``; degraded service is ``degraded_performance``; a
        maintenance in progress is ``under_maintenance``; the worst applies.
        """
        recs = self.active(now)
        count = len(self._extents)
        services = {}
        for service in SERVICES:
            mine = [r for r in recs if service in r.services and r.status(now) != "scheduled"]
            hit = set().union(*(self.affected_towns(r) for r in mine if r.kind == "outage"))
            found = ["operational"]
            for r in mine:
                if r.kind == "outage":
                    found.append("major_outage" if count and len(hit) * 2 >= count else "partial_outage")
                else:
                    found.append("degraded_performance" if r.kind == "degraded" else "under_maintenance")
            affected = set().union(*(self.affected_towns(r) for r in mine if r.kind != "maintenance"))
            services[service] = {"status": max(found, key=SEVERITY.index), "incidents": [r.id for r in mine],
                                 "towns": sorted(affected)}
        worst = max((v["status"] for v in services.values()), key=SEVERITY.index)
        return {"status": worst, "services": services, "incidents": recs}

    def severity(self, rec: Record) -> str:
        """Return the component status the incident alone gives its services while it lasts.

        As ``service_status`` judges it: an outage affecting at least half of the towns is a
        ``major_outage``, a smaller one a ``partial_outage``.
        """
        if rec.kind == "maintenance":
            return "under_maintenance"
        if rec.kind == "degraded":
            return "degraded_performance"
        count = len(self._extents)
        return "major_outage" if count and len(self.affected_towns(rec)) * 2 >= count else "partial_outage"

    def last_change(self, now: datetime, service: str | None = None) -> datetime | None:
        """Return the latest moment by ``now`` when an incident (of ``service``) changed, or None.

        Staff writes, and a maintenance window beginning or ending (``Record.moments``).
        """
        moments = self._moments
        if moments is None:
            by = {None: [], **{s: [] for s in SERVICES}}
            for rec in self.records:
                stamps = [t.timestamp() for t in rec.moments()]
                by[None] += stamps
                for s in rec.services:
                    by[s] += stamps
            moments = self._moments = {k: np.sort(np.array(v, dtype=float)) for k, v in by.items()}
        found = moments.get(service)
        if found is None:
            check_service(service)
        n = int(np.searchsorted(found, now.timestamp(), side="right"))
        return datetime.fromtimestamp(found[n - 1], timezone.utc) if n else None

    def first_change(self, service: str | None = None) -> datetime | None:
        """Return the earliest recorded moment of an incident (of ``service``), or None."""
        self.last_change(datetime.now(timezone.utc), service)  # builds the index
        found = self._moments.get(service)
        return datetime.fromtimestamp(found[0], timezone.utc) if len(found) else None

    def availability(self, slug: str, service: str, now: datetime, days: int = 90, *,
                     tz: str = DEFAULTS["TIMEZONE"], since: datetime | None = None) -> dict:
        """Return a town's availability of one service over the last ``days`` local days.

        See ``portal.incidents.availability`` for the rule: downtime is a whole-town outage.
        """
        check_service(service)
        if int(days) < 1:
            raise IncidentError(f"days {days!r} must be at least 1")
        extent = self._extents.get(slug)
        down, partial, maintenance = [], [], []
        for r in self._town_candidates(slug, extent):
            if (service not in r.services or r.started_at >= now or r.cancelled
                    or not r.affects_town(slug, extent)):
                continue
            span = (r.started_at, r.end(now) or now)
            if r.kind == "maintenance":
                maintenance.append(span)
            elif r.kind == "outage" and slug in r.towns:
                down.append(span)
            else:
                partial.append(span)
        strip = availability.day_strip(down, partial, maintenance, now, int(days), ZoneInfo(tz), since)
        return {"town": slug, "service": service, "tz": tz, **strip}

    # --- indexes -----------------------------------------------------------------------------------

    def _town_candidates(self, slug: str, extent) -> list[Record]:
        """Return the records that may affect a town: those listing it and those with an area nearby."""
        found = set(self._by_town.get(slug, ()))
        if extent is not None and len(self._area_geoms):
            found.update(self._area_owner[self._area_tree.query(extent)].tolist())
        return [self.records[i] for i in sorted(found)]

    def _towns_tree(self) -> tuple:
        """Return (slugs, extents, STRtree) of the live towns, built on first use."""
        found = self._town_tree
        if found is None:
            with self._lock:
                found = self._town_tree
                if found is None:
                    names = list(self._extents)
                    geoms = np.array([self._extents[s] for s in names] or [], dtype=object)
                    found = self._town_tree = (names, geoms, shapely.STRtree(geoms))
        return found

    def _open_areas(self, now: datetime) -> _OpenAreas:
        """Return where the records not ended by ``now`` apply (built once, again for an earlier ``now``)."""
        found = self._open
        if found is None or now.timestamp() < found.since:
            # An earlier ``now`` than the last build (a pinned clock) builds it again.
            found = self._open = _OpenAreas(self.records, self._end_ts, self._extents, now.timestamp())
        return found


class _OpenAreas:
    """Where the records not ended by ``since`` apply: their areas and listed towns' extents.

    Ended records never become active again, so for any later ``now`` the records active then
    are among these. Most of a long history has ended: only what is left is indexed.
    """

    def __init__(self, records: list[Record], end_ts: np.ndarray, extents: dict, since: float):
        """Index the areas and extents of the records whose end is later than ``since``."""
        self.since = since
        geoms, owners = [], []
        listing: dict[str, list[int]] = {}
        for i in np.flatnonzero(end_ts > since).tolist():
            rec = records[i]
            geoms.extend(rec.areas)
            owners.extend([i] * len(rec.areas))
            for slug in rec.towns:
                listing.setdefault(slug, []).append(i)
        self.listing = listing
        known = [slug for slug in listing if extents.get(slug) is not None]
        self.owners = owners + [listing[slug] for slug in known]
        geoms.extend(extents[slug] for slug in known)
        self.n_areas = len(owners)
        self.index = PolygonIndex(np.array(geoms or [], dtype=object))

    def records_at(self, lon: float, lat: float) -> set[int]:
        """Return the records whose area or listed town's extent meets the point."""
        found = set()
        for i in self.index.containing(lon, lat):
            if i < self.n_areas:
                found.add(self.owners[i])
            else:
                found.update(self.owners[i])
        return found


def _ordered(recs: list[Record], now: datetime) -> list[Record]:
    """Return ongoing (latest start first), then upcoming (soonest first), then history (latest end first)."""
    def order(rec: Record):
        if not rec.active(now):
            return (2, -rec.end(now).timestamp(), -rec.id)
        if rec.started_at > now:
            return (1, rec.started_at.timestamp(), rec.id)
        return (0, -rec.started_at.timestamp(), -rec.id)
    return sorted(recs, key=order)
