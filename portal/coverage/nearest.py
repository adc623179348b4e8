"""Exact nearest point on the boundaries of a set of polygons, in planar metres.

The rings are cut into runs of at most ``RUN`` consecutive segments, and a tree of boxes is
built over the runs: each leaf holds a few runs, each node the box of everything under it.
A box's distance from a point is never more than that of any segment inside it, so the
search visits the tree nearest box first, skips each box (of a node or of a run) farther
than the best distance found so far, and measures the segments of the runs it reaches
exactly. It gives the same answer as measuring every segment, with segments of any length,
so the rings need no extra vertices. The runs' vertices are kept in the tree's order (a
leaf's segments are one stretch of memory). The tree and the search are compiled (numba):
one search is a few microseconds, not tens of a Python loop over a library's answer.

Polygons may come in groups (the coverage of each technology): each group has its own tree,
and one compiled call searches every group asked for, so a point missing three technologies
costs one call from Python, not three.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import shapely

# Segments per run (a run's 9 vertices are 144 bytes), and runs per leaf: the fastest of the
# sizes tried on the benchmark's data (docs/performance.md).
RUN = 8
LEAF_RUNS = 16
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
def _run_boxes(xy, run_start, run_len):
    """Return the box (minx, miny, maxx, maxy) of each run's vertices."""
    boxes = np.empty((len(run_start), 4))
    for k in range(len(run_start)):
        s = run_start[k]
        minx, miny, maxx, maxy = xy[s, 0], xy[s, 1], xy[s, 0], xy[s, 1]
        for j in range(s + 1, s + run_len[k] + 1):
            minx, maxx = min(minx, xy[j, 0]), max(maxx, xy[j, 0])
            miny, maxy = min(miny, xy[j, 1]), max(maxy, xy[j, 1])
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = minx, miny, maxx, maxy
    return boxes


@numba.njit(cache=True)
def _build(run_box, leaf_runs):
    """Return (perm, start, end, left, box) of a tree over runs; node n's children: left[n], left[n] + 1."""
    n = len(run_box)
    perm = np.arange(n).astype(np.int32)
    cap = 4 * (n // leaf_runs + 1) + 1
    start = np.zeros(cap, np.int32)
    end = np.zeros(cap, np.int32)
    left = np.full(cap, -1, np.int32)
    box = np.zeros((cap, 4), np.float64)
    cx = (run_box[:, 0] + run_box[:, 2]) * 0.5
    cy = (run_box[:, 1] + run_box[:, 3]) * 0.5
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
        cminx = cminy = np.inf
        cmaxx = cmaxy = -np.inf
        for j in range(lo, hi):
            v = perm[j]
            minx, maxx = min(minx, run_box[v, 0]), max(maxx, run_box[v, 2])
            miny, maxy = min(miny, run_box[v, 1]), max(maxy, run_box[v, 3])
            cminx, cmaxx = min(cminx, cx[v]), max(cmaxx, cx[v])
            cminy, cmaxy = min(cminy, cy[v]), max(cmaxy, cy[v])
        box[node, 0], box[node, 1], box[node, 2], box[node, 3] = minx, miny, maxx, maxy
        if hi - lo <= leaf_runs:
            continue
        mid = (lo + hi) // 2
        # Split at the median centre along the longer side of the centres' spread.
        _nth_element(perm, cx if cmaxx - cminx >= cmaxy - cminy else cy, lo, hi, mid)
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
def _nearest(x, y, root, xy, run_start, run_len, run_box, start, end, left, box):
    """Return (qx, qy, squared distance, run) of the nearest point on the segments of the tree at ``root``.

    Run k is the segments from vertex ``run_start[k]`` to ``run_start[k] + run_len[k]`` of ``xy``.
    """
    best, bx, by, bk = np.inf, np.nan, np.nan, -1
    stack = np.empty(_STACK, np.int32)
    stack[0] = root
    top = 1
    while top:
        top -= 1
        node = stack[top]
        # A hair of slack: a segment's distance is computed with rounding, its box's is exact.
        if _box_distance2(box, node, x, y) > best + 1e-9 * (1.0 + best):
            continue
        child = left[node]
        if child >= 0:
            # Nearer child on top of the stack: it is searched first and tightens the bound.
            near, far = child, child + 1
            if _box_distance2(box, far, x, y) < _box_distance2(box, near, x, y):
                near, far = far, near
            stack[top] = far
            stack[top + 1] = near
            top += 2
            continue
        for k in range(start[node], end[node]):
            if _box_distance2(run_box, k, x, y) > best + 1e-9 * (1.0 + best):
                continue
            s = run_start[k]
            for a in range(s, s + run_len[k]):
                ax, ay = xy[a, 0], xy[a, 1]
                dx, dy = xy[a + 1, 0] - ax, xy[a + 1, 1] - ay
                length2 = dx * dx + dy * dy
                t = ((x - ax) * dx + (y - ay) * dy) / length2 if length2 > 0 else 0.0
                t = min(max(t, 0.0), 1.0)
                qx, qy = ax + t * dx, ay + t * dy
                d2 = (x - qx) * (x - qx) + (y - qy) * (y - qy)
                if d2 < best:
                    best, bx, by, bk = d2, qx, qy, k
    return bx, by, best, bk


@numba.njit(cache=True)
def _nearest_groups(x, y, wanted, roots, xy, run_start, run_len, run_box, start, end, left, box):
    """Return (qx, qy, distance) per group: searched where bit g of ``wanted`` is set, NaN elsewhere."""
    out = np.full((len(roots), 3), np.nan)
    for g in range(len(roots)):
        if (wanted >> g) & 1 and roots[g] >= 0:
            qx, qy, d2, _ = _nearest(x, y, roots[g], xy, run_start, run_len, run_box, start, end, left, box)
            out[g, 0], out[g, 1], out[g, 2] = qx, qy, math.sqrt(d2)
    return out


@numba.njit(cache=True)
def _gather(xy, first, length, start_at, out):
    """Copy the vertices of each run (``length + 1`` from ``first``) to ``out``, one run after another."""
    for k in range(len(first)):
        for j in range(length[k] + 1):
            out[start_at[k] + j, 0] = xy[first[k] + j, 0]
            out[start_at[k] + j, 1] = xy[first[k] + j, 1]


def _runs(ring_start: np.ndarray, ring_group: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return (first vertex, segments, group, ring) of every run of at most RUN segments, by group."""
    segments = np.maximum(np.diff(ring_start) - 1, 0)
    per_ring = -(-segments // RUN)
    ring = np.repeat(np.arange(len(segments)), per_ring)
    nth = np.arange(len(ring)) - np.repeat(np.cumsum(per_ring) - per_ring, per_ring)
    first = ring_start[ring] + nth * RUN
    length = np.minimum(RUN, segments[ring] - nth * RUN).astype(np.uint8)
    group = ring_group[ring]
    order = np.argsort(group, kind="stable")
    return first[order], length[order], group[order], ring[order]


class BoundaryIndex:
    """The rings of some polygons, in runs of segments, with a tree of their boxes per group."""

    def __init__(self, polygons: np.ndarray, groups=None):
        """Index the rings of planar (metre) polygons; ``groups`` (small ints, default 0) are kept apart."""
        polygons = np.asarray(polygons, dtype=object)
        groups = np.zeros(len(polygons), np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        rings, ring_polygon = shapely.get_parts(shapely.boundary(polygons), return_index=True)
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        ring_start = np.searchsorted(ring_of, np.arange(len(rings) + 1))
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        self.ring_polygon = ring_polygon
        self._index(np.ascontiguousarray(xy, dtype=np.float64), ring_start, groups[ring_polygon], n_groups)

    @classmethod
    def over(cls, xy: np.ndarray, ring_start: np.ndarray, ring_group: np.ndarray, n_groups: int):
        """Return the index of rings held as coordinates (``xy[ring_start[r]:ring_start[r + 1]]``).

        The index keeps its own copy of them, in its order: the caller may let ``xy`` go.
        """
        index = cls.__new__(cls)
        index.ring_polygon = np.arange(max(len(ring_start) - 1, 0))  # each ring its own "polygon"
        index._index(xy, np.asarray(ring_start, dtype=np.int64), np.asarray(ring_group, dtype=np.int64),
                      n_groups)
        return index

    def _index(self, xy, ring_start, ring_group, n_groups) -> None:
        """Cut the rings into runs and build one tree per group over them."""
        self.n_groups = n_groups
        self._n = int(ring_start[-1]) if len(ring_start) else 0
        first, length, group, ring = _runs(ring_start, ring_group)
        boxes = _run_boxes(xy, first, length)
        cuts = np.searchsorted(group, np.arange(n_groups + 1))
        self._roots = np.full(n_groups, -1, np.int64)
        parts, nodes = [], 0
        for g in range(n_groups):
            lo, hi = int(cuts[g]), int(cuts[g + 1])
            if hi == lo:
                continue
            perm, start, end, left, box = _build(boxes[lo:hi], LEAF_RUNS)
            parts.append((perm + lo, start + lo, end + lo, np.where(left >= 0, left + nodes, -1), box))
            self._roots[g] = nodes
            nodes += len(start)
        self._tree = None
        if parts:
            perm, start, end, left, box = (np.concatenate(col).astype(col[0].dtype) for col in zip(*parts))
            # Runs in tree order, and their vertices copied in that order too (a run's last
            # vertex is the next run's first: stored twice): a leaf's segments are then read
            # from one stretch of memory, not from a place in the rings per run.
            first, length = first[perm], length[perm]
            # The ring of each run, in tree order: which polygon a nearest point lies on.
            self._run_ring = ring[perm]
            start_at = np.zeros(len(first) + 1, np.int64)
            np.cumsum(length.astype(np.int64) + 1, out=start_at[1:])
            # Allocated by numpy, which asks for huge pages (the search reads it at random).
            ordered = np.empty((start_at[-1], 2))
            _gather(xy, first, length, start_at, ordered)
            self._tree = (ordered, start_at[:-1], length, boxes[perm], start, end, left, box)

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

    def nearest_polygon(self, x: float, y: float, group: int = 0) -> tuple[float, float, float, int] | None:
        """Return (qx, qy, distance, polygon) of the group's boundary point nearest to (x, y), or None.

        ``polygon`` is the position, among those the index was made of (``BoundaryIndex(polygons)``),
        of the polygon that point lies on.
        """
        if not self.has_rings(group):
            return None
        qx, qy, d2, run = _nearest(float(x), float(y), self._roots[group], *self._tree)
        return qx, qy, math.sqrt(d2), int(self.ring_polygon[self._run_ring[run]])

    def nearest_groups(self, x: float, y: float, wanted: int) -> list[list[float]]:
        """Return [qx, qy, distance] per group, searched where bit g of ``wanted`` is set (NaN elsewhere)."""
        if self._tree is None:
            return [[math.nan] * 3 for _ in range(self.n_groups)]
        return _nearest_groups(float(x), float(y), wanted, self._roots, *self._tree).tolist()
