"""The incidents of one data revision, read once per process and indexed for the reads.

Pages, the API and feeds ask about incidents on every request; reading and parsing every
incident each time cost milliseconds at 10,000 incidents. Each process keeps the records of
the revision it last saw (``meta.revision`` is bumped by every write), indexed by when they
end, which towns they list and where their areas lie, so a question touches only the few
incidents that can answer it. The answers are the same as scanning every record
(``portal.availability`` applies the exact tests).
"""
from __future__ import annotations

import math
import threading
from datetime import datetime

import numpy as np
import shapely

from portal.coverage.locate import PolygonIndex
from portal.data import db
from portal.incidents.writes import Record, geometry_of, load_records, towns_map


def live_towns(conn, towns_by_slug, entry=None) -> dict:
    """Return the given towns mapping, else the live towns (read once per data revision)."""
    if towns_by_slug is not None:
        return towns_by_slug
    entry = entry or for_connection(conn)
    if entry.towns is None:
        entry.towns = towns_map(conn)
    return entry.towns


class RevisionIndex:
    """The incidents of one revision: records, end times, listed towns, an area tree."""

    def __init__(self, recs: list[Record]):
        """Index the records once."""
        self.recs = recs
        self.by_id = {r.id: r for r in recs}
        # A record is active while its end (resolution, or a maintenance window's end) is later
        # than now, or while it has none: Record.end() and status() say the same.
        ends = [r.resolved_at or (r.scheduled_end if r.kind == "maintenance" else None) for r in recs]
        self.end_ts = np.array([e.timestamp() if e else math.inf for e in ends], dtype=float)
        self.by_town: dict[str, list[int]] = {}
        for i, r in enumerate(recs):
            for slug in r.towns:
                self.by_town.setdefault(slug, []).append(i)
        owners = [i for i, r in enumerate(recs) for _ in r.areas]
        self.area_owner = np.array(owners, dtype=np.intp)
        self.area_geoms = np.array([a for r in recs for a in r.areas] or [], dtype=object)
        self.area_tree = shapely.STRtree(self.area_geoms)
        shapely.prepare(self.area_geoms)
        self.towns: dict | None = None
        self.town_indexes: dict[tuple, TownIndex] = {}
        self.lock = threading.Lock()

    def active(self, now: datetime) -> np.ndarray:
        """Return a mask of the records active at ``now``."""
        return self.end_ts > now.timestamp()

    def town_index(self, towns_by_slug: dict) -> TownIndex:
        """Return the tree of the given towns' extents (built once per towns mapping)."""
        values = towns_by_slug.values()
        # Callers build the mapping per request from one snapshot's Town objects: the same
        # objects in the same order mean the same towns. The index keeps them alive, so their
        # ids cannot be reused by other objects while it is cached.
        key = (len(towns_by_slug), id(next(iter(values), None)), id(next(reversed(values), None)))
        found = self.town_indexes.get(key)
        if found is None:
            with self.lock:
                if len(self.town_indexes) > 4:
                    self.town_indexes.clear()
                found = self.town_indexes[key] = TownIndex(towns_by_slug, self)
        return found


class TownIndex:
    """An STRtree over one towns mapping's extents, and which towns each record affects."""

    def __init__(self, towns_by_slug: dict, entry: RevisionIndex):
        """Index the extents, and with them the incident areas for point look-ups."""
        self.keep = list(towns_by_slug.values())
        self.slugs = list(towns_by_slug)
        self.geoms = np.array([geometry_of(t) for t in self.keep] or [], dtype=object)
        self.tree = shapely.STRtree(self.geoms)
        self.affected: dict[int, frozenset] = {}
        self.entry = entry
        self.by_slug = dict(zip(self.slugs, self.geoms))
        self._open: OpenAreas | None = None

    def open_areas(self, now: datetime) -> OpenAreas:
        """Return where the records not ended by ``now`` apply (built once per revision)."""
        found = self._open
        if found is None or now.timestamp() < found.since:
            # An earlier ``now`` than the last build (a pinned clock) builds it again.
            found = self._open = OpenAreas(self.entry, self.by_slug, now.timestamp())
        return found

    def affected_by(self, rec: Record) -> frozenset:
        """Return the slugs of the mapping that the record affects (listed, or sharing interior)."""
        found = self.affected.get(rec.id)
        if found is None:
            known = set(self.slugs)
            slugs = {s for s in rec.towns if s in known}
            for area in rec.areas:
                for i in self.tree.query(area).tolist():
                    if self.geoms[i] is not None and shapely.relate_pattern(area, self.geoms[i], "T********"):
                        slugs.add(self.slugs[i])
            found = self.affected[rec.id] = frozenset(slugs)
        return found


class OpenAreas:
    """Where the records not ended by ``since`` apply: their areas and listed towns' extents.

    Ended records never become active again, so for any later ``now`` the records active then
    are among these. Most of a long history has ended: only what is left is indexed.
    """

    def __init__(self, entry: RevisionIndex, by_slug: dict, since: float):
        """Index the areas and extents of the records whose end is later than ``since``."""
        self.since = since
        geoms, owners = [], []
        listing: dict[str, list[int]] = {}
        for i in np.flatnonzero(entry.end_ts > since).tolist():
            rec = entry.recs[i]
            geoms.extend(rec.areas)
            owners.extend([i] * len(rec.areas))
            for slug in rec.towns:
                listing.setdefault(slug, []).append(i)
        self.listing = listing
        self.owners = owners + [listing[slug] for slug in listing if by_slug.get(slug) is not None]
        geoms.extend(by_slug[slug] for slug in listing if by_slug.get(slug) is not None)
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


_cache: dict[str, tuple[str, RevisionIndex]] = {}
_cache_lock = threading.Lock()


def for_connection(conn) -> RevisionIndex:
    """Return the incidents of the connection's current data (``db.data_key``), reading them on a change."""
    path = getattr(conn, "path", None) or conn.execute("PRAGMA database_list").fetchone()[2]
    key = db.data_key(db.get_meta(conn))
    found = _cache.get(path)
    if found is not None and found[0] == key:
        return found[1]
    with _cache_lock:
        found = _cache.get(path)
        if found is None or found[0] != key:
            # Read after the key: the records are at least as new as the key they get.
            found = _cache[path] = (key, RevisionIndex(load_records(conn)))
    return found[1]


def records(conn, ids=None) -> list[Record]:
    """Return the current records (all, or those ids), from the per-revision cache."""
    entry = for_connection(conn)
    if ids is None:
        return entry.recs
    return [entry.by_id[i] for i in ids if i in entry.by_id]


def affected_towns(rec: Record, towns_by_slug: dict) -> frozenset:
    """Return the slugs of ``towns_by_slug`` the record affects."""
    for _rev, entry in list(_cache.values()):
        if entry.by_id.get(rec.id) is rec:
            return entry.town_index(towns_by_slug).affected_by(rec)
    # A record not from the cache (a caller's own): look at every town.
    return frozenset(s for s, t in towns_by_slug.items() if rec.affects_town(s, geometry_of(t)))


def town_candidates(entry: RevisionIndex, slug: str, extent) -> list[int]:
    """Return the records that may affect a town: those listing it and those with an area nearby."""
    found = set(entry.by_town.get(slug, ()))
    if extent is not None and len(entry.area_geoms):
        found.update(entry.area_owner[entry.area_tree.query(extent)].tolist())
    return sorted(found)
