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
def _nearest(x, y, xy, joined, perm, start, end, left, box, quarter):
    """Return (qx, qy, squared distance) of the nearest point on the segments."""
    best, bx, by = np.inf, np.nan, np.nan
    stack = np.empty(_STACK, np.int32)
    stack[0] = 0
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
            v = perm[j]
            dvx, dvy = x - xy[v, 0], y - xy[v, 1]
            if dvx * dvx + dvy * dvy > best + quarter + 1e-9 * (1.0 + best):
                continue
            for s in range(max(v - 1, 0), v + 1):
                if not joined[s]:
                    continue
                ax, ay = xy[s, 0], xy[s, 1]
                dx, dy = xy[s + 1, 0] - ax, xy[s + 1, 1] - ay
                length2 = dx * dx + dy * dy
                t = ((x - ax) * dx + (y - ay) * dy) / length2 if length2 > 0 else 0.0
                t = min(max(t, 0.0), 1.0)
                qx, qy = ax + t * dx, ay + t * dy
                d2 = (x - qx) * (x - qx) + (y - qy) * (y - qy)
                if d2 < best:
                    best, bx, by = d2, qx, qy
    return bx, by, best


class BoundaryIndex:
    """The rings of some polygons, densified, with a kd-tree of their vertices."""

    def __init__(self, polygons: np.ndarray, step_m: float = DEFAULT_STEP_M):
        """Index the rings of planar (metre) polygons."""
        self.step_m = float(step_m)
        rings = shapely.get_parts(shapely.boundary(shapely.segmentize(polygons, self.step_m)))
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        self._xy = np.ascontiguousarray(xy, dtype=np.float64)
        # joined[i] is 1 when vertices i and i + 1 belong to one ring, so they bound a segment.
        self._joined = np.append(ring_of[1:] == ring_of[:-1], False).astype(np.uint8)
        self._tree = _build(self._xy, LEAF_SIZE) if len(self._xy) else None
        self._quarter = (self.step_m / 2) ** 2

    def __len__(self) -> int:
        """Return the number of indexed vertices."""
        return len(self._xy)

    def nearest(self, x: float, y: float) -> tuple[float, float, float] | None:
        """Return (qx, qy, distance) of the boundary point nearest to (x, y); None without rings."""
        if self._tree is None:
            return None
        qx, qy, d2 = _nearest(float(x), float(y), self._xy, self._joined, *self._tree, self._quarter)
        return qx, qy, math.sqrt(d2)
