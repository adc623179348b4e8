"""Spatial helpers in metres: local projections, geodesic distance, compass, display geometry.

Stored geometries are WGS 84 (lon, lat). Anything measured (a distance, an
area, a simplification tolerance) goes through a projection centred on the
region or through ``pyproj.Geod``, never through degrees.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pyproj
import shapely

# One ellipsoid object for the process: ``Geod.inv`` is re-entrant.
GEOD = pyproj.Geod(ellps="WGS84")

DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
DISPLAY_GRID_DEG = 1e-5  # ~1 m: finer digits only make map pages heavier
_WGS84 = pyproj.CRS.from_epsg(4326)


def _coords_fn(transformer: pyproj.Transformer, direction: str):
    """Return a ``shapely.transform`` callback that runs one vectorised transform."""

    def fn(coords: np.ndarray) -> np.ndarray:
        if len(coords) == 0:
            return coords
        x, y = transformer.transform(coords[:, 0], coords[:, 1], direction=direction)
        return np.column_stack((x, y))

    return fn


class LocalProjection:
    """Metric projections centred on a region: equidistant for distances, equal-area for areas."""

    def __init__(self, lon0: float, lat0: float):
        """Create the transformers once; every call below reuses them."""
        self.lon0 = float(lon0)
        self.lat0 = float(lat0)
        centre = f"+lat_0={self.lat0!r} +lon_0={self.lon0!r} +datum=WGS84 +units=m +no_defs"
        self.metric_crs = pyproj.CRS.from_proj4(f"+proj=aeqd {centre}")
        self.equal_area_crs = pyproj.CRS.from_proj4(f"+proj=laea {centre}")
        self._metric = pyproj.Transformer.from_crs(_WGS84, self.metric_crs, always_xy=True)
        self._equal_area = pyproj.Transformer.from_crs(_WGS84, self.equal_area_crs, always_xy=True)
        self._to_metric = _coords_fn(self._metric, "FORWARD")
        self._from_metric = _coords_fn(self._metric, "INVERSE")
        self._to_equal_area = _coords_fn(self._equal_area, "FORWARD")

    @classmethod
    def for_bounds(cls, minlon: float, minlat: float, maxlon: float, maxlat: float) -> LocalProjection:
        """Return a projection centred on the centre of a lon/lat bounding box."""
        return cls((minlon + maxlon) / 2.0, (minlat + maxlat) / 2.0)

    def __repr__(self) -> str:
        return f"LocalProjection(lon0={self.lon0}, lat0={self.lat0})"

    def to_metric(self, geoms):
        """Project lon/lat geometries (one or an array) to azimuthal equidistant metres."""
        return shapely.transform(geoms, self._to_metric)

    def from_metric(self, geoms):
        """Project azimuthal equidistant geometries back to lon/lat."""
        return shapely.transform(geoms, self._from_metric)

    def to_equal_area(self, geoms):
        """Project lon/lat geometries to Lambert azimuthal equal-area metres."""
        return shapely.transform(geoms, self._to_equal_area)

    def point_to_metric(self, lon, lat) -> tuple:
        """Return the equidistant (x, y) of a lon/lat (scalars or arrays)."""
        if isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
            # PROJ's ellipsoidal aeqd is the geodesic from the centre, so one Geod call gives
            # the same (x, y) to a nanometre at a fraction of a Transformer call's cost.
            azimuth, _, distance = GEOD.inv(self.lon0, self.lat0, lon, lat)
            a = math.radians(azimuth)
            return distance * math.sin(a), distance * math.cos(a)
        return self._metric.transform(lon, lat)

    def metric_to_lonlat(self, x, y) -> tuple:
        """Return the (lon, lat) of an equidistant (x, y) (scalars or arrays)."""
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            lon, lat, _ = GEOD.fwd(self.lon0, self.lat0, math.degrees(math.atan2(x, y)), math.hypot(x, y))
            return lon, lat
        return self._metric.transform(x, y, direction="INVERSE")


def geodesic_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Return the WGS 84 ellipsoidal distance in metres between two lon/lat points."""
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def azimuth_to_compass(azimuth_deg: float) -> str:
    """Return the 8-point direction of an azimuth (degrees clockwise from north)."""
    # Sectors are 45 degrees wide and centred on each direction, so N is [-22.5, 22.5).
    return DIRECTIONS[int(math.floor(((azimuth_deg % 360.0) + 22.5) / 45.0)) % 8]


def compass(lon1: float, lat1: float, lon2: float, lat2: float) -> str:
    """Return the direction (N, NE, ..., NW) from point 1 toward point 2."""
    return azimuth_to_compass(GEOD.inv(lon1, lat1, lon2, lat2)[0])


def bounds_around(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """Return the (minlon, minlat, maxlon, maxlat) box reaching ``radius_m`` on the ground each way."""
    _, north, _ = GEOD.fwd(lon, lat, 0.0, radius_m)
    _, south, _ = GEOD.fwd(lon, lat, 180.0, radius_m)
    east, _, _ = GEOD.fwd(lon, lat, 90.0, radius_m)
    west, _, _ = GEOD.fwd(lon, lat, 270.0, radius_m)
    # A pole within reach or the antimeridian crossed: a plain lon/lat box must widen.
    near_north = geodesic_distance_m(lon, lat, lon, 90.0) <= radius_m
    near_south = geodesic_distance_m(lon, lat, lon, -90.0) <= radius_m
    if near_north:
        north = 90.0
    if near_south:
        south = -90.0
    if near_north or near_south or east < lon or west > lon:
        west, east = -180.0, 180.0
    return (float(west), float(south), float(east), float(north))


def to_geojson(geom) -> dict | None:
    """Return the GeoJSON mapping of a geometry, None for a missing or empty one."""
    if geom is None or geom.is_empty:
        return None
    return json.loads(shapely.to_geojson(geom))


def _polygonal_part(geom):
    """Return the polygonal part of a geometry, or None when nothing of area is left."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, shapely.GeometryCollection):
        parts = [g for g in shapely.get_parts(geom) if isinstance(g, (shapely.Polygon, shapely.MultiPolygon))]
        if not parts:
            return None
        geom = shapely.union_all(parts) if len(parts) > 1 else parts[0]
    if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)) or geom.is_empty:
        return None
    return geom


# The map asks for coarser shapes as it zooms out: 40 km / 2^zoom metres, at least 1 m
# (static/js/map.js). These rungs are the only tolerances the portal simplifies to, so the
# copies it keeps are bounded whatever a client asks.
# (floor(x + 0.5) is JavaScript's Math.round.)
SIMPLIFY_LADDER = tuple(sorted({max(1, math.floor(40_000 / 2 ** zoom + 0.5)) for zoom in range(2, 20)}))


def ladder_tolerance(tolerance_m: float) -> int:
    """Return the rung of ``SIMPLIFY_LADDER`` nearest to a tolerance (by ratio; 0 and below: the finest)."""
    if not tolerance_m or tolerance_m <= SIMPLIFY_LADDER[0]:
        return SIMPLIFY_LADDER[0]
    return min(SIMPLIFY_LADDER, key=lambda rung: abs(math.log(rung / tolerance_m)))


def display_geometry(geom, tolerance_m: float, projection: LocalProjection):
    """Return a light map copy of a lon/lat polygon (or array of them); None where nothing is left.

    Simplifies in metres with topology preserved, rounds to ~1 m, repairs, and
    keeps only polygonal parts (slivers collapsed by rounding are noise on a map).
    """
    scalar = not isinstance(geom, np.ndarray)
    geoms = np.asarray([geom] if scalar else geom, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    present = np.array([g is not None for g in geoms], dtype=bool)
    if present.any():
        g = geoms[present]
        if tolerance_m and tolerance_m > 0:
            g = projection.from_metric(
                shapely.simplify(projection.to_metric(g), tolerance_m, preserve_topology=True)
            )
        g = shapely.make_valid(shapely.set_precision(g, DISPLAY_GRID_DEG))
        out[present] = [_polygonal_part(x) for x in g]
    return out[0] if scalar else out
