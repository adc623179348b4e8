"""Which polygons contain a point: a uniform grid of their boxes and a compiled ring test.

The polygons' rings are kept as one array of coordinates, and each cell of a grid over
their boxes lists the polygons whose box meets it. A point's answer is the polygons of its
cell whose box holds it and whose rings it is inside (an odd number of crossings of a ray to
the east) or on. The test is GEOS's ray-crossing rule, compiled (numba), so a point costs a
few microseconds instead of a tree query and a library call per candidate; for valid
polygons the answers are GEOS ``intersects`` (a point on the boundary counts). An invalid
polygon (a bow tie) has no even-odd answer that GEOS would share: those few (and any
geometry that is not a polygon) are asked of GEOS itself.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import shapely

# At most this many grid cells (8 bytes of list offset each). Within that, a cell is about
# the size of a typical polygon's box: lists stay short and a large polygon spans few cells.
MAX_CELLS = 4_000_000


@numba.njit(cache=True)
def _fill_grid(cells_x, cells_y, nx, ncells):
    """Return (start, items): per cell, the polygons whose range of cells covers it (CSR)."""
    n = len(cells_x)
    count = np.zeros(ncells + 1, np.int64)
    for g in range(n):
        for iy in range(cells_y[g, 0], cells_y[g, 1] + 1):
            for ix in range(cells_x[g, 0], cells_x[g, 1] + 1):
                count[iy * nx + ix + 1] += 1
    start = np.cumsum(count)
    items = np.empty(start[-1], np.int32)
    fill = start[:-1].copy()
    for g in range(n):
        for iy in range(cells_y[g, 0], cells_y[g, 1] + 1):
            for ix in range(cells_x[g, 0], cells_x[g, 1] + 1):
                c = iy * nx + ix
                items[fill[c]] = g
                fill[c] += 1
    return start, items


@numba.njit(cache=True)
def _inside(x, y, xy, ring_start, r0, r1):
    """Return 1 if (x, y) is inside the rings r0..r1-1 (even-odd), 0 on one of them, -1 outside."""
    crossings = 0
    for r in range(r0, r1):
        for j in range(ring_start[r], ring_start[r + 1] - 1):
            x1, y1, x2, y2 = xy[j, 0], xy[j, 1], xy[j + 1, 0], xy[j + 1, 1]
            if x1 == x and y1 == y:
                return 0
            if y1 == y and y2 == y:
                if min(x1, x2) <= x <= max(x1, x2):
                    return 0
                continue
            if (y1 > y and y2 <= y) or (y2 > y and y1 <= y):
                # Which side of the segment the point is on (GEOS's RayCrossingCounter).
                side = (x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)
                if side == 0.0:
                    return 0
                if y2 < y1:
                    side = -side
                if side > 0.0:
                    crossings += 1
    return 1 if crossings % 2 else -1


@numba.njit(cache=True)
def _locate(x, y, x0, y0, cell, nx, ny, start, items, bounds, geom_rings, ring_start, xy):
    """Return the sorted indices of the polygons that contain (x, y) or have it on their boundary."""
    found = np.empty(0, np.int64)
    if not (math.isfinite(x) and math.isfinite(y)):
        return found
    ix, iy = math.floor((x - x0) / cell), math.floor((y - y0) / cell)
    if ix < 0 or iy < 0 or ix >= nx or iy >= ny:
        return found
    c = iy * nx + ix
    found = np.empty(start[c + 1] - start[c], np.int64)
    k = 0
    for j in range(start[c], start[c + 1]):
        g = items[j]
        if not (bounds[g, 0] <= x <= bounds[g, 2] and bounds[g, 1] <= y <= bounds[g, 3]):
            continue
        if _inside(x, y, xy, ring_start, geom_rings[g], geom_rings[g + 1]) >= 0:
            found[k] = g
            k += 1
    return np.sort(found[:k])


class PolygonIndex:
    """Polygons (and multipolygons) in one grid, for asking which contain a point."""

    def __init__(self, geoms: np.ndarray):
        """Index the rings of the geometries (lon/lat or any planar coordinates)."""
        geoms = np.asarray(geoms, dtype=object)
        n = len(geoms)
        polygonal = np.isin(shapely.get_type_id(geoms), (3, 6)) if n else np.zeros(0, dtype=bool)
        valid = polygonal & shapely.is_valid(geoms) if n else polygonal
        # Invalid polygons (and anything not a polygon): no rings here, asked of GEOS instead.
        self._invalid = np.flatnonzero(~valid)
        self._invalid_geoms = geoms[self._invalid]
        ringed = np.where(valid, geoms, None)
        parts, part_of = shapely.get_parts(ringed, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
        self._xy = np.ascontiguousarray(xy, dtype=np.float64)
        self._ring_start = np.searchsorted(vertex_ring, np.arange(len(rings) + 1)).astype(np.int64)
        self._geom_rings = np.searchsorted(part_of[ring_part], np.arange(n + 1)).astype(np.int64)
        bounds = shapely.bounds(ringed) if n else np.zeros((0, 4))
        has = ~np.isnan(bounds).any(axis=1)
        # Empty boxes (no rings) never hold a point.
        self._bounds = np.where(has[:, None], bounds, [np.inf, np.inf, -np.inf, -np.inf])
        self._grid(self._bounds[has])

    def _grid(self, boxes: np.ndarray) -> None:
        """Choose the cell size and list each polygon in the cells its box meets."""
        if len(boxes):
            x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
            width, height = boxes[:, 2].max() - x0, boxes[:, 3].max() - y0
            typical = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
            # No finer than the typical box, and no more than MAX_CELLS cells.
            cell = max(typical, math.sqrt(width * height / MAX_CELLS), (width + height) / MAX_CELLS, 1e-9)
        else:
            x0 = y0 = 0.0
            width = height = 0.0
            cell = 1.0
        self._x0, self._y0, self._cell = float(x0), float(y0), float(cell)
        self._nx = int(math.floor(width / cell)) + 1
        self._ny = int(math.floor(height / cell)) + 1
        b = self._bounds
        has = np.isfinite(b[:, 0])
        # Box corners go through the same arithmetic as a query point, so a point in a box
        # always lands in one of its cells.
        cx = np.floor((b[has][:, [0, 2]] - self._x0) / cell).astype(np.int64)
        cy = np.floor((b[has][:, [1, 3]] - self._y0) / cell).astype(np.int64)
        cx, cy = np.clip(cx, 0, self._nx - 1), np.clip(cy, 0, self._ny - 1)
        all_x = np.full((len(b), 2), (0, -1), dtype=np.int64)
        all_y = np.full((len(b), 2), (0, -1), dtype=np.int64)
        all_x[has], all_y[has] = cx, cy
        self._start, self._items = _fill_grid(all_x, all_y, self._nx, self._nx * self._ny)

    def containing(self, x: float, y: float) -> list[int]:
        """Return the indices (ascending) of the polygons that contain (x, y) or have it on their edge."""
        found = _locate(float(x), float(y), self._x0, self._y0, self._cell, self._nx, self._ny,
                        self._start, self._items, self._bounds, self._geom_rings, self._ring_start,
                        self._xy).tolist()
        if len(self._invalid):
            extra = self._invalid[shapely.intersects_xy(self._invalid_geoms, x, y)].tolist()
            if extra:
                found = sorted(found + extra)
        return found
