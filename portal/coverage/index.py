"""Coverage answers without Flask: what covers a point, the nearest coverage, town shares, map areas.

``CoverageIndex`` is built once per data version; every answer after that is
a handful of index look-ups (compiled grids and trees, STRtrees), never a scan over all areas.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import shapely

from portal.coverage.geo import GEOD, LocalProjection, azimuth_to_compass, display_geometry
from portal.coverage.locate import PolygonIndex
from portal.coverage.nearest import BoundaryIndex
from portal.coverage.point_summary import DOWN, EARLIEST, LIVE, PLANNED, SLOTS, UP, PointSummary
from portal.data.layers import Area, Town

TECH_ORDER = ("fiber", "cable", "dsl", "wireless")
STATUS_ORDER = ("live", "planned")


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


def _copy_summary(summary: dict) -> dict:
    """Return a copy of a cached town summary that a caller may extend freely."""
    return {**summary, "technologies": [dict(e) for e in summary["technologies"]]}


def _object_array(items) -> np.ndarray:
    """Return a 1-D object array of geometries (np.array would try to unpack them)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


class CoverageIndex:
    """Spatial index over one version of the towns and coverage layers."""

    def __init__(self, areas: list[Area], towns: list[Town], drop_distance_m: float = 150):
        """Project, index and prepare everything once."""
        self.drop_distance_m = float(drop_distance_m)
        self.areas = [a for a in areas if a.geometry is not None and not a.geometry.is_empty]
        self.towns = [t for t in towns if t.geometry is not None and not t.geometry.is_empty]
        self._area_geoms = _object_array([a.geometry for a in self.areas])
        self._town_geoms = _object_array([t.geometry for t in self.towns])
        self._slug_index = {t.slug: i for i, t in enumerate(self.towns)}
        self._bounds = self._compute_bounds()
        self.projection = (
            LocalProjection.for_bounds(*self._bounds) if self._bounds else LocalProjection(0.0, 0.0)
        )
        self._area_tree = shapely.STRtree(self._area_geoms)
        self._town_equal_area = self.projection.to_equal_area(self._town_geoms)
        self._town_area = shapely.area(self._town_equal_area)
        # Areas and towns share one grid for point look-ups: one look-up answers both.
        grid = PolygonIndex(np.concatenate((self._area_geoms, self._town_geoms)))
        self._point_summary = PointSummary(grid, self.areas, self._town_area, TECH_ORDER)
        # Nearest live coverage of each technology: its polygons' rings in a kd-tree (metres),
        # one tree per technology, searched together.
        code = {t: k for k, t in enumerate(TECH_ORDER)}
        live = [i for i, a in enumerate(self.areas) if a.status == "live" and a.technology in code]
        groups = np.array([code[self.areas[i].technology] for i in live], dtype=np.int64)
        self._boundaries = BoundaryIndex(self.projection.to_metric(self._area_geoms[live]), groups=groups)
        # Positions in TECH_ORDER of the technologies with live coverage somewhere.
        self._searchable = frozenset(k for k in range(len(TECH_ORDER)) if self._boundaries.has_rings(k))
        self._summaries: dict[str, dict] = {}
        self._display: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        # Guards the lazy caches (and the polygon-against-polygon prepared state they use).
        self._lock = threading.Lock()

    def _compute_bounds(self) -> tuple[float, float, float, float] | None:
        """Return the lon/lat bounds of all towns and areas, None without data."""
        geoms = np.concatenate((self._area_geoms, self._town_geoms))
        if len(geoms) == 0:
            return None
        b = shapely.total_bounds(geoms)
        return None if np.isnan(b).any() else tuple(float(v) for v in b)

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

    def bulk_point_answers(self, lats, lons) -> list[dict]:
        """Return ``point_answer`` for each pair of coordinates."""
        return [self.point_answer(lat, lon) for lat, lon in zip(lats, lons)]

    # -- towns ----------------------------------------------------------------

    def _summarise(self, town_i: int, cand: np.ndarray) -> dict:
        """Return the summary of one town from the areas whose boxes meet its extent."""
        extent = self._town_geoms[town_i]
        if len(cand):
            # Interiors must meet: an area that only touches the edge covers nothing.
            cand = cand[shapely.intersects(extent, self._area_geoms[cand])]
            cand = cand[~shapely.touches(extent, self._area_geoms[cand])]
        cand = np.sort(cand)
        # Projected here, not kept: a copy of every area would cost as much memory as the areas.
        equal_area = dict(zip(cand.tolist(), self.projection.to_equal_area(self._area_geoms[cand])))
        groups: dict[tuple[str, str], list[int]] = {}
        for i in cand.tolist():
            a = self.areas[i]
            groups.setdefault((a.technology, a.status), []).append(i)
        town_area = float(self._town_area[town_i])
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
        rank = {t: n for n, t in enumerate(TECH_ORDER)}
        srank = {s: n for n, s in enumerate(STATUS_ORDER)}
        entries.sort(key=lambda e: (rank.get(e["technology"], len(rank)), srank.get(e["status"], 2)))
        # Decide on the exact shares: a sliver that rounds to 0.000 is still coverage.
        live = [e for e in entries if e["status"] == "live" and e["share"] > 0]
        fiber = next((e["share"] for e in live if e["technology"] == "fiber"), 0.0)
        best = live[0]["technology"] if live else None
        for e in entries:
            e["share"] = round(e["share"], 3)
        return {"has_fiber": fiber > 0, "best": best, "fiber_share": round(fiber, 3), "technologies": entries}

    def town_summary(self, slug: str) -> dict:
        """Return the coverage shares of one town's extent; KeyError for an unknown slug."""
        summary = self._summaries.get(slug)
        if summary is None:
            i = self._slug_index[slug]
            with self._lock:
                summary = self._summaries.get(slug) or self._summarise(
                    i, self._area_tree.query(self._town_geoms[i])
                )
                self._summaries[slug] = summary
        return _copy_summary(summary)

    def all_town_summaries(self) -> dict[str, dict]:
        """Return every town's summary, computed in one bulk tree query."""
        with self._lock:
            self._summarise_missing()
        return {t.slug: _copy_summary(self._summaries[t.slug]) for t in self.towns}

    def _summarise_missing(self) -> None:
        """Compute the summaries not cached yet with one bulk tree query."""
        missing = [i for i, t in enumerate(self.towns) if t.slug not in self._summaries]
        if missing:
            towns_i, areas_i = self._area_tree.query(self._town_geoms[missing])
            order = np.argsort(towns_i, kind="stable")
            towns_i, areas_i = towns_i[order], areas_i[order]
            cuts = np.searchsorted(towns_i, np.arange(len(missing) + 1))
            for k, i in enumerate(missing):
                self._summaries[self.towns[i].slug] = self._summarise(i, areas_i[cuts[k]:cuts[k + 1]])

    # -- maps -----------------------------------------------------------------

    def _display_geoms(self, idx: np.ndarray, tolerance_m: float) -> np.ndarray:
        """Return (and cache) map geometries of some areas at one tolerance."""
        key = float(tolerance_m)
        if key not in self._display:
            n = len(self.areas)
            self._display[key] = (np.full(n, None, dtype=object), np.zeros(n, dtype=bool))
        geoms, done = self._display[key]
        todo = idx[~done[idx]]
        if len(todo):
            geoms[todo] = display_geometry(self._area_geoms[todo], key, self.projection)
            done[todo] = True
        return geoms[idx]

    def areas_in_bbox(self, bbox: tuple | None, tolerance_m: float | None = None) -> list[Area]:
        """Return the areas meeting a (minlon, minlat, maxlon, maxlat) box (None: all), in layer order."""
        if bbox is None:
            idx = np.arange(len(self.areas))
        else:
            idx = np.sort(self._area_tree.query(shapely.box(*bbox), predicate="intersects"))
        if tolerance_m is None:
            return [self.areas[i] for i in idx.tolist()]
        with self._lock:
            geoms = self._display_geoms(idx, tolerance_m)
        return [
            dataclasses.replace(self.areas[i], geometry=g)
            for i, g in zip(idx.tolist(), geoms) if g is not None
        ]
