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


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return the integers of every range [start, end), one range after another."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    first = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - first, lengths)


class Rings:
    """Polygons as one array of ring coordinates: the grid searches it, maps and shares rebuild from it.

    Geometries are added in batches (``add``), so that a layer read a few thousand rows at a
    time never exists whole as GEOS objects, then ``finish`` joins the batches. Geometry ``g``
    has parts ``geom_parts[g]:geom_parts[g + 1]``, part ``p`` rings ``part_rings[p]:part_rings[p + 1]``
    and ring ``r`` the vertices ``xy[ring_start[r]:ring_start[r + 1]]``. Invalid polygons and
    anything that is not a polygon have no rings here: their GEOS objects are kept instead.
    """

    def __init__(self, vertices: int = 0):
        """Start empty, with room for ``vertices`` coordinates (an upper bound is fine)."""
        self.count = 0
        # Coordinates go straight into one buffer, not into per-batch arrays joined at the end
        # (that would hold every coordinate twice at that moment). Allocated whole, the buffer
        # gets the huge pages numpy asks for (the ring tests ran ~10 % slower without them);
        # pages never written are never resident. Too small, it grows in place.
        self._xy = np.empty((max(int(vertices), 1024), 2))
        self._n_xy = 0
        self._batches: list[tuple] = []

    def add(self, geoms) -> None:
        """Append geometries (an array or list of them) after those added before."""
        geoms = np.asarray(geoms, dtype=object)
        n = len(geoms)
        if not n:
            return
        kinds = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
        type_id = shapely.get_type_id(geoms)
        valid = np.isin(type_id, kinds) & shapely.is_valid(geoms)
        parts = np.zeros(n, np.int64)
        rings_per_part = ring_len = np.empty(0, np.int64)
        if valid.any():
            kind, xy, offsets = shapely.to_ragged_array(geoms[valid])
            ring_len = np.diff(offsets[0]).astype(np.int64)
            rings_per_part = np.diff(offsets[1]).astype(np.int64)
            parts[valid] = 1 if kind == shapely.GeometryType.POLYGON else np.diff(offsets[2])
            self._append_xy(xy)
            del xy
        bad = np.flatnonzero(~valid)
        self._batches.append((ring_len, rings_per_part, parts, type_id == shapely.GeometryType.MULTIPOLYGON,
                              shapely.bounds(geoms), bad + self.count, geoms[bad]))
        self.count += n

    def _append_xy(self, xy: np.ndarray) -> None:
        """Copy coordinates to the end of the buffer, growing it by half when full."""
        end = self._n_xy + len(xy)
        if end > len(self._xy):
            self._xy.resize((max(end, len(self._xy) * 3 // 2), 2), refcheck=False)
        self._xy[self._n_xy:end] = xy
        self._n_xy = end

    def finish(self) -> Rings:
        """Join the batches into single arrays; return self."""
        self.xy, self._xy = self._xy[:self._n_xy], None
        columns = list(zip(*self._batches))
        self._batches = []

        def joined(k, empty):
            return np.concatenate(columns[k]) if columns else empty

        self.ring_start = _offsets(joined(0, np.empty(0, np.int64)))
        self.part_rings = _offsets(joined(1, np.empty(0, np.int64)))
        self.geom_parts = _offsets(joined(2, np.empty(0, np.int64)))
        self.multi = joined(3, np.empty(0, bool))
        self.envelopes = joined(4, np.empty((0, 4)))
        self.invalid = joined(5, _NONE).astype(np.int64)
        self.invalid_geoms = joined(6, np.empty(0, dtype=object))
        self.geom_rings = self.part_rings[self.geom_parts]
        return self

    def __len__(self) -> int:
        """Return the number of geometries."""
        return self.count

    def vertex_span(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """Return the first and past-the-last vertex of each geometry in ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.ring_start[self.geom_rings[idx]], self.ring_start[self.geom_rings[idx + 1]]

    def total_bounds(self) -> tuple[float, float, float, float] | None:
        """Return the (minx, miny, maxx, maxy) of every geometry, None without any coordinate."""
        env = self.envelopes
        if not len(env) or np.isnan(env).all():
            return None
        return (float(np.nanmin(env[:, 0])), float(np.nanmin(env[:, 1])),
                float(np.nanmax(env[:, 2])), float(np.nanmax(env[:, 3])))

    def meeting_box(self, minx: float, miny: float, maxx: float, maxy: float) -> np.ndarray:
        """Return the indices (ascending) of the geometries whose envelopes meet a box (edges count)."""
        env = self.envelopes
        return np.flatnonzero((env[:, 0] <= maxx) & (env[:, 2] >= minx)
                              & (env[:, 1] <= maxy) & (env[:, 3] >= miny))

    def geometries(self, idx) -> np.ndarray:
        """Return GEOS geometries of ``idx``, rebuilt from the rings (the same coordinates as added)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty(len(idx), dtype=object)
        if not len(idx):
            return out
        ringless = np.isin(idx, self.invalid)
        if ringless.any():
            where = np.searchsorted(self.invalid, idx[ringless])
            out[ringless] = self.invalid_geoms[where]
        multi = self.multi[idx] & ~ringless
        for mask, kind in ((~multi & ~ringless, shapely.GeometryType.POLYGON),
                           (multi, shapely.GeometryType.MULTIPOLYGON)):
            if mask.any():
                out[mask] = self._rebuild(idx[mask], kind)
        return out

    def _rebuild(self, idx: np.ndarray, kind) -> np.ndarray:
        """Return polygons (or multipolygons) of ``idx`` from their parts, rings and vertices."""
        parts = concat_ranges(self.geom_parts[idx], self.geom_parts[idx + 1])
        rings = concat_ranges(self.part_rings[parts], self.part_rings[parts + 1])
        vertices = concat_ranges(self.ring_start[rings], self.ring_start[rings + 1])
        ring_offsets = _offsets(self.ring_start[rings + 1] - self.ring_start[rings])
        part_offsets = _offsets(self.part_rings[parts + 1] - self.part_rings[parts])
        if kind == shapely.GeometryType.POLYGON:
            offsets = (ring_offsets, part_offsets)
        else:
            offsets = (ring_offsets, part_offsets, _offsets(self.geom_parts[idx + 1] - self.geom_parts[idx]))
        return shapely.from_ragged_array(kind, self.xy[vertices], offsets)


def _offsets(counts: np.ndarray) -> np.ndarray:
    """Return the running start of each count, and the total last (CSR offsets)."""
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


class PolygonIndex:
    """Polygons (and multipolygons) in one grid, for asking which contain a point."""

    def __init__(self, geoms: np.ndarray):
        """Index the rings of the geometries (lon/lat or any planar coordinates)."""
        geoms = np.asarray(geoms, dtype=object)
        rings = Rings(int(shapely.get_num_coordinates(geoms).sum()) if len(geoms) else 0)
        rings.add(geoms)
        self._index(rings.finish())

    @classmethod
    def over(cls, rings: Rings) -> PolygonIndex:
        """Return the grid of geometries already held as rings (their coordinates are not copied)."""
        index = cls.__new__(cls)
        index._index(rings)
        return index

    def _index(self, rings: Rings) -> None:
        """List each polygon with rings in the grid cells it meets."""
        self.rings = rings
        self._invalid = rings.invalid
        self._invalid_geoms = rings.invalid_geoms
        self._xy, self._ring_start, self._geom_rings = rings.xy, rings.ring_start, rings.geom_rings
        has = np.diff(self._geom_rings) > 0
        # Geometries without rings (invalid, empty) are never in a cell: GEOS answers for them.
        self._bounds = np.where(has[:, None], rings.envelopes, [np.inf, np.inf, -np.inf, -np.inf])
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
