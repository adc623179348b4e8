"""Exact nearest point on the boundaries of a set of polygons, in planar metres.

The rings are densified so that no segment is longer than L = ``step_m`` and their vertices
go into a kd-tree. A segment whose two ends are both at least r from a point p is at least
sqrt(r² - (L/2)²) from p (the foot of the perpendicular is within L/2 of one end). So while
the best distance found so far is d, the segment holding the answer has an end within
sqrt(d² + (L/2)²) of p: the search visits only the tree's boxes and vertices within that
reach, measures the segments on both sides of each vertex it visits exactly, and tightens d
as it goes. It gives the same answer as measuring every segment. The tree and the search are
compiled (numba): one search is a few microseconds, not tens of a Python loop over a
library's answer.

Polygons may come in groups (the coverage of each technology): each group has its own tree,
and one compiled call searches every group asked for, so a point missing three technologies
costs one call from Python, not three.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import shapely

DEFAULT_STEP_M = 100.0
LEAF_SIZE = 16
# The search stack grows by one per level; median splits keep any tree far shallower.
_STACK = 128


@numba.njit(cache=True)
def _nth_element(perm, coords, lo, hi, k):
    """Reorder perm[lo:hi] so that perm[k] holds the k-th smallest coordinate, smaller before it."""
    hi -= 1
    while hi > lo:
        mid = (lo + hi) // 2
        # Median of three as the pivot: sorted input stays linear.
        a, b, c = coords[perm[lo]], coords[perm[mid]], coords[perm[hi]]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while coords[perm[i]] < pivot:
                i += 1
            while coords[perm[j]] > pivot:
                j -= 1
            if i <= j:
                perm[i], perm[j] = perm[j], perm[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@numba.njit(cache=True)
def _build(xy, leaf_size):
    """Return (perm, start, end, left, box) of a kd-tree; children of node n are left[n], left[n] + 1."""
    n = len(xy)
    perm = np.arange(n).astype(np.int32)
    cap = 4 * (n // leaf_size + 1) + 1
    start = np.zeros(cap, np.int32)
    end = np.zeros(cap, np.int32)
    left = np.full(cap, -1, np.int32)
    box = np.zeros((cap, 4), np.float64)
    xs = np.ascontiguousarray(xy[:, 0])
    ys = np.ascontiguousarray(xy[:, 1])
    end[0] = n
    count = 1
    todo = np.zeros(cap, np.int32)
    top = 1
    while top:
        top -= 1
        node = todo[top]
        lo, hi = start[node], end[node]
        minx = miny = np.inf
        maxx = maxy = -np.inf
        for j in range(lo, hi):
            v = perm[j]
            minx, maxx = min(minx, xs[v]), max(maxx, xs[v])
            miny, maxy = min(miny, ys[v]), max(maxy, ys[v])
        box[node, 0], box[node, 1], box[node, 2], box[node, 3] = minx, miny, maxx, maxy
        if hi - lo <= leaf_size:
            continue
        mid = (lo + hi) // 2
        _nth_element(perm, xs if maxx - minx >= maxy - miny else ys, lo, hi, mid)
        left[node] = count
        start[count], end[count] = lo, mid
        start[count + 1], end[count + 1] = mid, hi
        todo[top], todo[top + 1] = count, count + 1
        top += 2
        count += 2
    return perm, start[:count].copy(), end[:count].copy(), left[:count].copy(), box[:count].copy()


@numba.njit(cache=True)
def _box_distance2(box, node, x, y):
    """Return the squared distance from (x, y) to a node's box (0 inside it)."""
    dx = max(box[node, 0] - x, 0.0, x - box[node, 2])
    dy = max(box[node, 1] - y, 0.0, y - box[node, 3])
    return dx * dx + dy * dy


@numba.njit(cache=True)
def _nearest(x, y, root, xy, before, after, start, end, left, box, quarter):
    """Return (qx, qy, squared distance) of the nearest point on the segments of the tree at ``root``.

    ``xy`` holds the vertices in tree order (a leaf's vertices side by side in memory);
    ``before``/``after`` give the position of each one's neighbours on its ring (-1: none).
    """
    best, bx, by = np.inf, np.nan, np.nan
    stack = np.empty(_STACK, np.int32)
    stack[0] = root
    top = 1
    while top:
        top -= 1
        node = stack[top]
        reach = best + quarter + 1e-9 * (1.0 + best)
        if _box_distance2(box, node, x, y) > reach:
            continue
        child = left[node]
        if child >= 0:
            # Nearer child on top of the stack: it is searched first and tightens the reach.
            near, far = child, child + 1
            if _box_distance2(box, far, x, y) < _box_distance2(box, near, x, y):
                near, far = far, near
            stack[top] = far
            stack[top + 1] = near
            top += 2
            continue
        for j in range(start[node], end[node]):
            dvx, dvy = x - xy[j, 0], y - xy[j, 1]
            if dvx * dvx + dvy * dvy > best + quarter + 1e-9 * (1.0 + best):
                continue
            # The segment ending at this vertex, then the one starting at it.
            for a, b in ((before[j], j), (j, after[j])):
                if a < 0 or b < 0:
                    continue
                ax, ay = xy[a, 0], xy[a, 1]
                dx, dy = xy[b, 0] - ax, xy[b, 1] - ay
                length2 = dx * dx + dy * dy
                t = ((x - ax) * dx + (y - ay) * dy) / length2 if length2 > 0 else 0.0
                t = min(max(t, 0.0), 1.0)
                qx, qy = ax + t * dx, ay + t * dy
                d2 = (x - qx) * (x - qx) + (y - qy) * (y - qy)
                if d2 < best:
                    best, bx, by = d2, qx, qy
    return bx, by, best


@numba.njit(cache=True)
def _nearest_groups(x, y, wanted, roots, xy, before, after, start, end, left, box, quarter):
    """Return (qx, qy, distance) per group: searched where bit g of ``wanted`` is set, NaN elsewhere."""
    out = np.full((len(roots), 3), np.nan)
    for g in range(len(roots)):
        if (wanted >> g) & 1 and roots[g] >= 0:
            qx, qy, d2 = _nearest(x, y, roots[g], xy, before, after, start, end, left, box, quarter)
            out[g, 0], out[g, 1], out[g, 2] = qx, qy, math.sqrt(d2)
    return out


class BoundaryIndex:
    """The rings of some polygons, densified, with a kd-tree of their vertices per group."""

    def __init__(self, polygons: np.ndarray, step_m: float = DEFAULT_STEP_M, groups=None):
        """Index the rings of planar (metre) polygons; ``groups`` (small ints, default 0) are kept apart."""
        self.step_m = float(step_m)
        polygons = np.asarray(polygons, dtype=object)
        groups = np.zeros(len(polygons), np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        self.n_groups = int(groups.max()) + 1 if len(groups) else 0
        order = np.argsort(groups, kind="stable")
        rings, ring_polygon = shapely.get_parts(
            shapely.boundary(shapely.segmentize(polygons[order], self.step_m)), return_index=True)
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        n = len(xy)
        self._quarter = (self.step_m / 2) ** 2
        # One tree per group over its run of vertices, all in one set of arrays: positions and
        # vertex numbers shifted by the run's start, child links by the group's first node.
        vertex_group = groups[order][ring_polygon][ring_of] if n else np.zeros(0, np.int64)
        cuts = np.searchsorted(vertex_group, np.arange(self.n_groups + 1))
        self._roots = np.full(self.n_groups, -1, np.int64)
        parts, nodes = [], 0
        for g in range(self.n_groups):
            lo, hi = int(cuts[g]), int(cuts[g + 1])
            if hi == lo:
                continue
            perm, start, end, left, box = _build(xy[lo:hi], LEAF_SIZE)
            parts.append((perm + lo, start + lo, end + lo, np.where(left >= 0, left + nodes, -1), box))
            self._roots[g] = nodes
            nodes += len(start)
        self._tree = None
        if parts:
            perm, start, end, left, box = (np.concatenate(col).astype(col[0].dtype) for col in zip(*parts))
            # Vertices in tree order, so that a leaf's vertices are read from one stretch of
            # memory (read through ``perm`` they were a cache miss each), and for each one
            # where its ring's previous and next vertices are (-1: none).
            position = np.empty(n, np.int32)
            position[perm] = np.arange(n, dtype=np.int32)
            joined = ring_of[1:] == ring_of[:-1]  # vertices i and i + 1 bound a segment
            after = np.full(n, -1, np.int32)
            after[position[:-1][joined]] = position[1:][joined]
            before = np.full(n, -1, np.int32)
            before[position[1:][joined]] = position[:-1][joined]
            self._tree = (np.ascontiguousarray(xy[perm]), before, after, start, end, left, box)
        self._n = n

    def __len__(self) -> int:
        """Return the number of indexed vertices."""
        return self._n

    def has_rings(self, group: int = 0) -> bool:
        """Return whether the group has any boundary to be near to."""
        return 0 <= group < self.n_groups and self._roots[group] >= 0

    def nearest(self, x: float, y: float, group: int = 0) -> tuple[float, float, float] | None:
        """Return (qx, qy, distance) of the group's boundary point nearest to (x, y); None without rings."""
        if not self.has_rings(group):
            return None
        qx, qy, d = self.nearest_groups(x, y, 1 << group)[group]
        return qx, qy, d

    def nearest_groups(self, x: float, y: float, wanted: int) -> list[list[float]]:
        """Return [qx, qy, distance] per group, searched where bit g of ``wanted`` is set (NaN elsewhere)."""
        if self._tree is None:
            return [[math.nan] * 3 for _ in range(self.n_groups)]
        return _nearest_groups(float(x), float(y), wanted, self._roots, *self._tree, self._quarter).tolist()
