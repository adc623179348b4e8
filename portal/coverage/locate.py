"""Which polygons contain a point: a uniform grid of their boxes and a compiled ring test.

The polygons' rings are kept as one array of coordinates, and each cell of a grid over
their boxes lists the polygons that meet it, marked when the cell lies wholly inside one.
A point's answer is the polygons of its cell that hold all of it, and those whose box holds
the point and whose rings it is inside (an odd number of crossings of a ray to the east) or
on. The test is GEOS's ray-crossing rule, compiled (numba), so a point costs a few
microseconds instead of a tree query and a library call per candidate; for valid
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
# half the size of a typical polygon's box: the cells inside a polygon need no ring test,
# while the lists stay short.
MAX_CELLS = 4_000_000
CELL_OF_TYPICAL = 0.5
_NONE = np.empty(0, np.int64)


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
def _cell_of(v, origin, cell):
    """Return the grid column (or row) of a coordinate: the one formula for boxes and points."""
    return math.floor((v - origin) / cell)


@numba.njit(cache=True)
def _fill_grid(bounds, geom_rings, ring_start, xy, x0, y0, cell, nx, ny):
    """Return (start, items, inside): per cell (CSR), the polygons that meet it, and whether wholly.

    A polygon is listed in each cell of its box that its boundary passes through
    (``inside`` 0: points there need the ring test) and in each cell wholly inside it
    (``inside`` 1: no test). Cells of its box wholly outside it are left out. A cell's
    boundary crossings are over-estimated, never missed: each edge is cut into pieces no
    longer than a cell and the cells of each piece's box (widened by a hair) are marked; an
    unmarked cell has no boundary point, so its centre decides for all of it.
    """
    n = len(bounds)
    total = 0
    for g in range(n):
        if math.isfinite(bounds[g, 0]):
            w = _cell_of(bounds[g, 2], x0, cell) - _cell_of(bounds[g, 0], x0, cell) + 1
            h = _cell_of(bounds[g, 3], y0, cell) - _cell_of(bounds[g, 1], y0, cell) + 1
            total += w * h
    pair_cell = np.empty(total, np.int64)
    pair_geom = np.empty(total, np.int32)
    pair_inside = np.empty(total, np.uint8)
    hair = cell * 1e-9
    k = 0
    for g in range(n):
        if not math.isfinite(bounds[g, 0]):
            continue
        ix0, iy0 = _cell_of(bounds[g, 0], x0, cell), _cell_of(bounds[g, 1], y0, cell)
        ix1, iy1 = _cell_of(bounds[g, 2], x0, cell), _cell_of(bounds[g, 3], y0, cell)
        w, h = ix1 - ix0 + 1, iy1 - iy0 + 1
        marked = np.zeros(w * h, np.uint8)
        for r in range(geom_rings[g], geom_rings[g + 1]):
            for j in range(ring_start[r], ring_start[r + 1] - 1):
                ax, ay, bx, by = xy[j, 0], xy[j, 1], xy[j + 1, 0], xy[j + 1, 1]
                pieces = int(max(abs(bx - ax), abs(by - ay)) / cell) + 1
                for p in range(pieces):
                    t0, t1 = p / pieces, (p + 1) / pieces
                    px0, py0 = ax + t0 * (bx - ax), ay + t0 * (by - ay)
                    px1, py1 = ax + t1 * (bx - ax), ay + t1 * (by - ay)
                    cx0 = max(_cell_of(min(px0, px1) - hair, x0, cell), ix0) - ix0
                    cx1 = min(_cell_of(max(px0, px1) + hair, x0, cell), ix1) - ix0
                    cy0 = max(_cell_of(min(py0, py1) - hair, y0, cell), iy0) - iy0
                    cy1 = min(_cell_of(max(py0, py1) + hair, y0, cell), iy1) - iy0
                    for cy in range(cy0, cy1 + 1):
                        for cx in range(cx0, cx1 + 1):
                            marked[cy * w + cx] = 1
        for cy in range(h):
            for cx in range(w):
                inside = 0
                if not marked[cy * w + cx]:
                    mx, my = x0 + (ix0 + cx + 0.5) * cell, y0 + (iy0 + cy + 0.5) * cell
                    # The centre must fall in this very cell, else test points one by one.
                    if _cell_of(mx, x0, cell) == ix0 + cx and _cell_of(my, y0, cell) == iy0 + cy:
                        where = _inside(mx, my, xy, ring_start, geom_rings[g], geom_rings[g + 1])
                        if where < 0:
                            continue
                        inside = 1 if where > 0 else 0
                pair_cell[k] = (iy0 + cy) * nx + ix0 + cx
                pair_geom[k] = g
                pair_inside[k] = inside
                k += 1
    start = np.zeros(nx * ny + 1, np.int64)
    for i in range(k):
        start[pair_cell[i] + 1] += 1
    start = np.cumsum(start)
    items = np.empty(k, np.int32)
    inside = np.empty(k, np.uint8)
    fill = start[:-1].copy()
    # In polygon order within each cell, so a cell's answer comes out sorted.
    for i in range(k):
        c = pair_cell[i]
        items[fill[c]] = pair_geom[i]
        inside[fill[c]] = pair_inside[i]
        fill[c] += 1
    return start, items, inside


@numba.njit(cache=True)
def locate_in_grid(x, y, x0, y0, cell, nx, ny, start, items, inside, bounds, geom_rings, ring_start, xy):
    """Return the indices (ascending) of the polygons that contain (x, y) or have it on their boundary."""
    found = np.empty(0, np.int64)
    if not (math.isfinite(x) and math.isfinite(y)):
        return found
    ix, iy = _cell_of(x, x0, cell), _cell_of(y, y0, cell)
    if ix < 0 or iy < 0 or ix >= nx or iy >= ny:
        return found
    c = iy * nx + ix
    found = np.empty(start[c + 1] - start[c], np.int64)
    k = 0
    for j in range(start[c], start[c + 1]):
        g = items[j]
        if not inside[j]:
            if not (bounds[g, 0] <= x <= bounds[g, 2] and bounds[g, 1] <= y <= bounds[g, 3]):
                continue
            if _inside(x, y, xy, ring_start, geom_rings[g], geom_rings[g + 1]) < 0:
                continue
        found[k] = g
        k += 1
    return found[:k]


class PolygonIndex:
    """Polygons (and multipolygons) in one grid, for asking which contain a point."""

    def __init__(self, geoms: np.ndarray):
        """Index the rings of the geometries (lon/lat or any planar coordinates)."""
        geoms = np.asarray(geoms, dtype=object)
        n = len(geoms)
        kinds = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
        polygonal = np.isin(shapely.get_type_id(geoms), kinds) if n else np.zeros(0, dtype=bool)
        valid = polygonal & shapely.is_valid(geoms) if n else polygonal
        # Invalid polygons (and anything not a polygon): no rings here, asked of GEOS instead.
        self._invalid = np.flatnonzero(~valid).astype(np.int64)
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
        """Choose the cell size and list each polygon in the cells it meets."""
        if len(boxes):
            x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
            width, height = boxes[:, 2].max() - x0, boxes[:, 3].max() - y0
            typical = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
            # About half a typical box, and no more than MAX_CELLS cells.
            cell = max(typical * CELL_OF_TYPICAL, math.sqrt(width * height / MAX_CELLS),
                       (width + height) / MAX_CELLS, 1e-9)
        else:
            x0 = y0 = 0.0
            width = height = 0.0
            cell = 1.0
        self._x0, self._y0, self._cell = float(x0), float(y0), float(cell)
        self._nx = int(math.floor(width / cell)) + 1
        self._ny = int(math.floor(height / cell)) + 1
        self._start, self._items, self._inside = _fill_grid(
            self._bounds, self._geom_rings, self._ring_start, self._xy,
            self._x0, self._y0, self._cell, self._nx, self._ny,
        )
        # The arguments after (x, y) that ``locate_in_grid`` takes (compiled callers pass them on).
        self.grid = (self._x0, self._y0, self._cell, self._nx, self._ny, self._start, self._items,
                     self._inside, self._bounds, self._geom_rings, self._ring_start, self._xy)

    def invalid_containing(self, x: float, y: float) -> np.ndarray:
        """Return the indices of the polygons GEOS is asked about (invalid ones) that hold (x, y)."""
        if not len(self._invalid):
            return _NONE
        return self._invalid[shapely.intersects_xy(self._invalid_geoms, x, y)]

    def containing(self, x: float, y: float) -> list[int]:
        """Return the indices (ascending) of the polygons that contain (x, y) or have it on their edge."""
        found = locate_in_grid(float(x), float(y), *self.grid).tolist()
        if len(self._invalid):
            extra = self.invalid_containing(x, y).tolist()
            if extra:
                found = sorted(found + extra)
        return found
