"""Coverage answers without Flask: what covers a point, the nearest coverage, town shares, map areas.

``CoverageIndex`` is built once per data version; every answer after that is a handful of
index look-ups (a compiled grid and trees), never a scan over all areas. The areas' rings are
held as coordinate arrays, not as GEOS objects: once in lon/lat for the grid (which must
answer as GEOS does on the stored polygons) and once in metres for the nearest search, for
the live areas only. Maps rebuild GEOS polygons from them for the areas they show.
Town shares are measured when a layer is imported and stored with it; an index given none
measures them itself (``ShareMeter``).
"""
from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely

from portal.coverage.geo import (
    GEOD,
    SIMPLIFY_LADDER,
    LocalProjection,
    azimuth_to_compass,
    display_geometry,
    ladder_tolerance,
)
from portal.coverage.locate import PolygonIndex, Rings, concat_ranges
from portal.coverage.nearest import BoundaryIndex
from portal.coverage.point_summary import DOWN, EARLIEST, LIVE, PLANNED, SLOTS, UP, PointSummary
from portal.data.layers import Area, Town
from portal.limits import UNLIMITED, Budget, TooLarge

# At most one map copy per rung of the ladder; areas simplified per budget check.
DISPLAY_CACHE_SIZE = len(SIMPLIFY_LADDER)
SIMPLIFY_CHUNK = 256

TECH_ORDER = ("fiber", "cable", "dsl", "wireless")
STATUS_ORDER = ("live", "planned")
# Vertices projected to metres at a time while the nearest-search copy is made.
_PROJECT_BLOCK = 1 << 20


def _max(a, b):
    """Return the larger of two optional numbers."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _min(a, b):
    """Return the smaller of two optional values (ISO dates compare as text)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def _covered_area(geoms: np.ndarray, extent) -> float:
    """Return the area of the union of some polygons inside an extent (same projection)."""
    try:
        # Overlaps are unioned so they count once; this union is several times faster
        # than union_all when most polygons do not touch each other.
        return float(shapely.area(shapely.intersection(shapely.disjoint_subset_union_all(geoms), extent)))
    except shapely.errors.GEOSException:
        # A projected ring can pinch into an invalid one; repair instead of failing the page.
        covered = shapely.union_all(shapely.make_valid(geoms))
        return float(shapely.area(shapely.intersection(covered, shapely.make_valid(extent))))


def _object_array(items) -> np.ndarray:
    """Return a 1-D object array of geometries (np.array would try to unpack them)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _present(records: list) -> list:
    """Return the records (areas, towns) whose geometry is there and not empty."""
    geoms = _object_array([r.geometry for r in records])
    keep = ~shapely.is_missing(geoms)
    keep[keep] = ~shapely.is_empty(geoms[keep])
    return [r for r, k in zip(records, keep.tolist()) if k]


def entry_order(entry: dict) -> tuple:
    """Return the sort key of a town's share entry: technologies best first, live before planned."""
    rank = TECH_ORDER.index(entry["technology"]) if entry["technology"] in TECH_ORDER else len(TECH_ORDER)
    srank = STATUS_ORDER.index(entry["status"]) if entry["status"] in STATUS_ORDER else len(STATUS_ORDER)
    return rank, srank


def summary_of(entries: list[dict]) -> dict:
    """Return a town's summary from its share entries (exact shares, in ``entry_order``)."""
    # Decide on the exact shares: a sliver that rounds to 0.000 is still coverage.
    live = [e for e in entries if e["status"] == "live" and e["share"] > 0]
    fiber = next((e["share"] for e in live if e["technology"] == "fiber"), 0.0)
    best = live[0]["technology"] if live else None
    return {"has_fiber": fiber > 0, "best": best, "fiber_share": round(fiber, 3),
            "technologies": [{**e, "share": round(e["share"], 3)} for e in entries]}


def _copy_summary(summary: dict) -> dict:
    """Return a copy of a cached town summary that a caller may extend freely."""
    return {**summary, "technologies": [dict(e) for e in summary["technologies"]]}


class ShareMeter:
    """Measures the share of each town's extent that each technology and status covers.

    Shares are areas on an equal-area plane centred on the data (``LocalProjection``), so the
    same layers give the same shares wherever they are measured: at import, or by an index
    given none. ``geometries(idx)`` returns the areas' polygons (lon/lat) by index.
    """

    def __init__(self, areas: list[Area], towns: list[Town], projection: LocalProjection,
                 geometries: Callable[[np.ndarray], np.ndarray], envelopes: np.ndarray):
        """Project the towns' extents once; areas are projected when a town needs them."""
        self.areas = areas
        self.towns = towns
        self.projection = projection
        self._geometries = geometries
        self._envelopes = envelopes
        self._town_geoms = _object_array([t.geometry for t in towns])
        self._town_equal_area = projection.to_equal_area(self._town_geoms)
        self.town_area = shapely.area(self._town_equal_area)

    @classmethod
    def of(cls, areas: list[Area], towns: list[Town]) -> ShareMeter:
        """Return the meter of areas and towns that carry their geometries (as an import has them)."""
        areas, towns = _present(areas), _present(towns)
        geoms = _object_array([a.geometry for a in areas])
        everything = np.concatenate((geoms, _object_array([t.geometry for t in towns])))
        bounds = shapely.total_bounds(everything) if len(everything) else np.full(4, np.nan)
        projection = (LocalProjection(0.0, 0.0) if np.isnan(bounds).any()
                      else LocalProjection.for_bounds(*(float(v) for v in bounds)))
        return cls(areas, towns, projection, geoms.__getitem__, shapely.bounds(geoms).reshape(-1, 4))

    def entries(self, town_i: int) -> list[dict]:
        """Return the share entries (exact shares, in ``entry_order``) of one town."""
        extent = self._town_geoms[town_i]
        minx, miny, maxx, maxy = shapely.bounds(extent)
        env = self._envelopes
        cand = np.flatnonzero((env[:, 0] <= maxx) & (env[:, 2] >= minx)
                              & (env[:, 1] <= maxy) & (env[:, 3] >= miny))
        geoms = self._geometries(cand)
        if len(cand):
            # Interiors must meet: an area that only touches the edge covers nothing.
            meets = shapely.intersects(extent, geoms)
            meets[meets] = ~shapely.touches(extent, geoms[meets])
            cand, geoms = cand[meets], geoms[meets]
        # Projected here, not kept: a copy of every area would cost as much memory as the areas.
        equal_area = dict(zip(cand.tolist(), self.projection.to_equal_area(geoms)))
        groups: dict[tuple[str, str], list[int]] = {}
        for i in cand.tolist():
            a = self.areas[i]
            groups.setdefault((a.technology, a.status), []).append(i)
        town_area = float(self.town_area[town_i])
        extent_ea = self._town_equal_area[town_i]
        entries = []
        for (technology, status), idx in groups.items():
            covered = _covered_area(_object_array([equal_area[i] for i in idx]), extent_ea)
            share = covered / town_area if town_area > 0 else 0.0
            if share <= 0:
                # Boxes met but no area is shared (a slit, a rounding sliver): not present.
                continue
            down = up = available_from = None
            for i in idx:
                a = self.areas[i]
                down, up = _max(down, a.max_down_mbps), _max(up, a.max_up_mbps)
                if status == "planned":
                    available_from = _min(available_from, a.available_from)
            entries.append({
                "technology": technology, "status": status, "share": min(1.0, float(share)),
                "max_down_mbps": down, "max_up_mbps": up, "available_from": available_from,
            })
        entries.sort(key=entry_order)
        return entries

    def all_entries(self, done: Callable[[], object] | None = None) -> dict[str, list[dict]]:
        """Return every town's share entries by slug; ``done`` is called after each town.

        Towns are measured on a thread per core: GEOS releases the interpreter lock, and the
        unions take tens of seconds at 100,000 polygons.
        """
        def measure(i):
            entries = self.entries(i)
            if done is not None:
                done()
            return entries

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            found = list(pool.map(measure, range(len(self.towns))))
        return {t.slug: entries for t, entries in zip(self.towns, found)}


def town_shares(areas: list[Area], towns: list[Town]) -> dict[str, list[dict]]:
    """Return each town's share entries over a coverage layer: what an import stores with it."""
    return ShareMeter.of(areas, towns).all_entries()


class CoverageIndex:
    """Spatial index over one version of the towns and coverage layers."""

    def __init__(self, areas: list[Area], towns: list[Town], drop_distance_m: float = 150,
                 shares: dict[str, list[dict]] | None = None):
        """Project, index and prepare everything once; ``shares`` are stored share entries by slug."""
        geoms = _object_array([a.geometry for a in areas] + [t.geometry for t in towns])
        vertices = int(np.nansum(shapely.get_num_coordinates(geoms))) if len(geoms) else 0
        self._build([areas], towns, drop_distance_m, shares, vertices)

    @classmethod
    def streamed(cls, batches: Iterable[list[Area]], towns: list[Town], drop_distance_m: float = 150,
                 shares: dict[str, list[dict]] | None = None, vertices: int = 0) -> CoverageIndex:
        """Return the index of areas given in batches, each let go once its rings are copied.

        ``vertices`` is the areas' vertex count, or more (``layers.coverage_vertex_bound``).
        """
        index = cls.__new__(cls)
        vertices += sum(int(shapely.get_num_coordinates(t.geometry)) for t in towns if t.geometry is not None)
        index._build(batches, towns, drop_distance_m, shares, vertices)
        return index

    def _build(self, batches, towns, drop_distance_m, shares, vertices) -> None:
        """Copy the rings batch by batch, then index them."""
        self.drop_distance_m = float(drop_distance_m)
        rings = Rings(vertices)
        self.areas = []
        for batch in batches:
            kept = _present(batch)
            rings.add(_object_array([a.geometry for a in kept]))
            # The geometry lives on as rings; the record keeps the attributes.
            self.areas.extend(dataclasses.replace(a, geometry=None) for a in kept)
            del batch, kept
        self.towns = _present(towns)
        n_areas = len(self.areas)
        # Town extents follow the areas in the same rings and grid: one look-up answers both.
        rings.add(_object_array([t.geometry for t in self.towns]))
        self._rings = rings.finish()
        self._slug_index = {t.slug: i for i, t in enumerate(self.towns)}
        self._bounds = self._rings.total_bounds()
        self.projection = (
            LocalProjection.for_bounds(*self._bounds) if self._bounds else LocalProjection(0.0, 0.0)
        )
        self._shares = ShareMeter(self.areas, self.towns, self.projection, self._rings.geometries,
                                  self._rings.envelopes[:n_areas])
        self._town_area = self._shares.town_area
        grid = PolygonIndex.over(self._rings)
        self._point_summary = PointSummary(grid, self.areas, self._town_area, TECH_ORDER)
        self._boundaries = self._boundary_index()
        # Positions in TECH_ORDER of the technologies with live coverage somewhere.
        self._searchable = frozenset(k for k in range(len(TECH_ORDER)) if self._boundaries.has_rings(k))
        self._summaries: dict[str, dict] = {}
        if shares is not None:
            self._summaries = {t.slug: summary_of(shares.get(t.slug, [])) for t in self.towns}
        # Map copies per ladder tolerance, least recently used dropped first (at most one per rung).
        self._display: OrderedDict[float, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # Guards the lazy caches.
        self._lock = threading.Lock()

    def _boundary_index(self) -> BoundaryIndex:
        """Return the nearest-search index of the live areas' rings, one group per technology, in metres."""
        code = {t: k for k, t in enumerate(TECH_ORDER)}
        live = np.array([i for i, a in enumerate(self.areas) if a.status == "live" and a.technology in code],
                        dtype=np.int64)
        groups = np.array([code[self.areas[i].technology] for i in live.tolist()], dtype=np.int64)
        rings = self._rings
        r0, r1 = rings.geom_rings[live], rings.geom_rings[live + 1]
        ring_ids = concat_ranges(r0, r1)
        ring_start = np.zeros(len(ring_ids) + 1, np.int64)
        np.cumsum(rings.ring_start[ring_ids + 1] - rings.ring_start[ring_ids], out=ring_start[1:])
        # The live areas' vertices in metres, projected a block at a time into one array.
        v0, v1 = rings.vertex_span(live)
        xy = np.empty((int(ring_start[-1]), 2))
        done, g = 0, 0
        while g < len(live):
            h = g + max(1, int(np.searchsorted(np.cumsum(v1[g:] - v0[g:]), _PROJECT_BLOCK)))
            vertices = concat_ranges(v0[g:h], v1[g:h])
            x, y = self.projection.point_to_metric(rings.xy[vertices, 0], rings.xy[vertices, 1])
            xy[done:done + len(vertices), 0], xy[done:done + len(vertices), 1] = x, y
            done += len(vertices)
            g = h
        n_groups = len(TECH_ORDER) if len(live) else 0
        return BoundaryIndex.over(xy, ring_start, np.repeat(groups, r1 - r0), n_groups)

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        """Return (minlon, minlat, maxlon, maxlat) of towns and areas, None without data."""
        return self._bounds

    @property
    def technologies(self) -> tuple[str, ...]:
        """Return the technologies with live coverage somewhere, best first."""
        return tuple(t for k, t in enumerate(TECH_ORDER) if k in self._searchable)

    # -- points ---------------------------------------------------------------

    def _nearest_entries(self, missing: list[int], lon: float, lat: float) -> dict:
        """Return the nearest live point of each missing technology, measured on the ellipsoid.

        ``missing`` holds the technologies' positions in TECH_ORDER.
        """
        x, y = self.projection.point_to_metric(lon, lat)
        to_lonlat = self.projection.metric_to_lonlat
        found = self._boundaries.nearest_groups(x, y, sum(1 << k for k in missing))
        out = {}
        for k in missing:
            ex, ey, _ = found[k]
            nlon, nlat = to_lonlat(ex, ey)
            azimuth, _, distance = GEOD.inv(lon, lat, nlon, nlat)
            out[TECH_ORDER[k]] = {
                "distance_m": int(round(distance)),
                "direction": azimuth_to_compass(azimuth),
                "lat": round(nlat, 6),
                "lon": round(nlon, 6),
                "connection": "standard_drop" if distance <= self.drop_distance_m else "network_extension",
            }
        return out

    def point_answer(self, lat: float, lon: float) -> dict:
        """Return what is available, planned and nearest at a point, and its town."""
        lat, lon = float(lat), float(lon)
        # A point on an edge counts as covered (GEOS intersects, not contains).
        slots = self._point_summary.at(lon, lat)
        areas = self.areas
        available, planned, missing = [], [], []
        for k, technology in enumerate(TECH_ORDER):
            mine = slots[k * SLOTS:(k + 1) * SLOTS]
            if mine[LIVE] >= 0:
                down, up = mine[DOWN], mine[UP]
                available.append({
                    "technology": technology,
                    "max_down_mbps": areas[down].max_down_mbps if down >= 0 else None,
                    "max_up_mbps": areas[up].max_up_mbps if up >= 0 else None,
                })
                continue
            if mine[PLANNED] >= 0:
                earliest = mine[EARLIEST]
                planned.append({"technology": technology,
                                "available_from": areas[earliest].available_from if earliest >= 0 else None})
            if k in self._searchable:
                missing.append(k)
        town = self.towns[slots[-1]] if slots[-1] >= 0 else None
        return {
            "lat": lat,
            "lon": lon,
            "town": {"slug": town.slug, "name": town.name, "name_ru": town.name_ru} if town else None,
            "available": available,
            "planned": planned,
            "nearest": self._nearest_entries(missing, lon, lat) if missing else {},
        }

    def town_at(self, lon: float, lat: float):
        """Return the town whose extent holds a point (the smallest of nested ones), or None; compiled."""
        found = self._point_summary.at(float(lon), float(lat))[-1]
        return self.towns[found] if found >= 0 else None

    def bulk_point_answers(self, lats, lons) -> list[dict]:
        """Return ``point_answer`` for each pair of coordinates."""
        return [self.point_answer(lat, lon) for lat, lon in zip(lats, lons)]

    # -- towns ----------------------------------------------------------------

    def town_summary(self, slug: str) -> dict:
        """Return the coverage shares of one town's extent; KeyError for an unknown slug."""
        summary = self._summaries.get(slug)
        if summary is None:
            i = self._slug_index[slug]
            with self._lock:
                summary = self._summaries.get(slug) or summary_of(self._shares.entries(i))
                self._summaries[slug] = summary
        return _copy_summary(summary)

    def all_town_summaries(self) -> dict[str, dict]:
        """Return every town's summary (measured now for those not stored or measured before)."""
        if len(self._summaries) < len(self.towns):
            with self._lock:
                for slug, entries in self._shares.all_entries().items():
                    self._summaries.setdefault(slug, summary_of(entries))
        return {t.slug: _copy_summary(self._summaries[t.slug]) for t in self.towns}

    # -- maps -----------------------------------------------------------------

    def _display_geoms(self, idx: np.ndarray, tolerance_m: float, budget: Budget = UNLIMITED) -> np.ndarray:
        """Return (and cache) map geometries of some areas at one ladder tolerance."""
        key = float(ladder_tolerance(tolerance_m))
        if key not in self._display:
            n = len(self.areas)
            self._display[key] = (np.full(n, None, dtype=object), np.zeros(n, dtype=bool))
            while len(self._display) > DISPLAY_CACHE_SIZE:
                self._display.popitem(last=False)
        self._display.move_to_end(key)
        geoms, done = self._display[key]
        todo = idx[~done[idx]]
        # In chunks, with the budget checked between them: a chunk done stays done.
        for start in range(0, len(todo), SIMPLIFY_CHUNK):
            budget.check()
            part = todo[start:start + SIMPLIFY_CHUNK]
            geoms[part] = display_geometry(self._rings.geometries(part), key, self.projection)
            done[part] = True
        return geoms[idx]

    def display_cache_tolerances(self) -> list[float]:
        """Return the tolerances whose map copies are kept now (least recently used first)."""
        return list(self._display)

    def areas_in_bbox(self, bbox: tuple | None, tolerance_m: float | None = None, *,
                      budget: Budget = UNLIMITED, max_areas: int | None = None) -> list[Area]:
        """Return the areas meeting a (minlon, minlat, maxlon, maxlat) box (None: all), in layer order.

        ``tolerance_m`` snaps to the nearest rung of ``geo.SIMPLIFY_LADDER``. More than ``max_areas``
        areas raise ``TooLarge`` naming the bbox; ``budget`` is checked while simplifying.
        """
        n = len(self.areas)
        if bbox is None:
            idx = np.arange(n)
            geoms = None
        else:
            idx = self._rings.meeting_box(*bbox)
            idx = idx[idx < n]
            geoms = self._rings.geometries(idx)
            meets = shapely.intersects(shapely.box(*bbox), geoms) if len(idx) else np.zeros(0, dtype=bool)
            idx, geoms = idx[meets], geoms[meets]
        if max_areas is not None and len(idx) > max_areas:
            raise TooLarge("bbox", f"{len(idx)} coverage areas would be in this answer, more than the"
                                   f" {max_areas} one answer may hold; give a narrower bbox")
        if tolerance_m is None:
            geoms = self._rings.geometries(idx) if geoms is None else geoms
        else:
            with self._lock:
                geoms = self._display_geoms(idx, tolerance_m, budget)
        return [
            dataclasses.replace(self.areas[i], geometry=g)
            for i, g in zip(idx.tolist(), geoms) if g is not None
        ]
