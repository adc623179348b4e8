"""Exact nearest point on the boundaries of a set of polygons, in planar metres.

The rings are densified so that no segment is longer than ``step_m`` and their vertices go
into a kd-tree. For a query point p, let d be the distance to its nearest vertex. The nearest
boundary point q is no farther than d, and it lies on a segment of length ≤ ``step_m``, so one
end of that segment is within |pq| + step_m / 2 ≤ d + step_m / 2 of p. The segments that touch
the vertices within that radius therefore contain q: measuring those few exactly gives the same
answer as measuring every segment. A kd-tree of plain coordinates is also a fraction of the
memory of a tree of geometries.
"""
from __future__ import annotations

import math
import os

import numpy as np
import shapely

# pykdtree parallelises queries with OpenMP. One point per query gains nothing from threads,
# spinning OpenMP threads would compete with the other web workers for the cores, and an
# OpenMP thread pool does not survive a fork (gunicorn forks its workers after loading the
# index). Its runtime reads this when the module below is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pykdtree.kdtree import KDTree

DEFAULT_STEP_M = 100.0
# Neighbours fetched in the first look; at 100,000 polygons 16 sufficed for all but about
# one query point in a thousand, which asks again for more.
FIRST_K = 16


class BoundaryIndex:
    """The rings of some polygons, densified, with a kd-tree of their vertices."""

    def __init__(self, polygons: np.ndarray, step_m: float = DEFAULT_STEP_M):
        """Index the rings of planar (metre) polygons."""
        self.step_m = float(step_m)
        rings = shapely.get_parts(shapely.boundary(shapely.segmentize(polygons, self.step_m)))
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        self._xy = np.ascontiguousarray(xy, dtype=np.float64)
        # x of vertex i at 2i, y at 2i + 1: reading a few floats from Python through a
        # memoryview costs a fraction of a numpy gather.
        self._flat = memoryview(self._xy.reshape(-1))
        # joined[i] is 1 when vertices i and i + 1 belong to one ring, so they bound a segment
        # (bytes: indexing one from Python costs a fraction of indexing a numpy array).
        self._joined = np.append(ring_of[1:] == ring_of[:-1], False).astype(np.uint8).tobytes()
        self._tree = KDTree(self._xy, leafsize=16) if len(self._xy) else None

    def __len__(self) -> int:
        """Return the number of indexed vertices."""
        return len(self._xy)

    def nearest(self, x: float, y: float) -> tuple[float, float, float] | None:
        """Return (qx, qy, distance) of the boundary point nearest to (x, y); None without rings."""
        if self._tree is None:
            return None
        n = len(self._xy)
        query = np.array([[x, y]], dtype=np.float64)
        half = self.step_m / 2
        k = min(FIRST_K, n)
        while True:
            dist, idx = self._tree.query(query, k=k)
            dist, idx = np.reshape(dist, -1).tolist(), np.reshape(idx, -1).tolist()
            limit = dist[0] + half
            # Every vertex within the limit must be among those fetched: the farthest fetched
            # one lies beyond it, or all were fetched.
            if k == n or dist[-1] > limit:
                break
            k = min(n, k * 8)
        limit = limit * (1 + 1e-12) + 1e-9  # rounding in the tree's distances
        joined = self._joined
        starts = set()
        for i, d in zip(idx, dist):
            if d > limit:
                break  # sorted by distance
            if joined[i]:
                starts.add(i)
            if i and joined[i - 1]:
                starts.add(i - 1)
        flat = self._flat
        if not starts:
            # Lone vertices (a degenerate ring): the nearest vertex is the answer.
            return flat[2 * idx[0]], flat[2 * idx[0] + 1], dist[0]
        best = (math.inf, 0.0, 0.0)
        for i in starts:
            ax, ay, bx, by = flat[2 * i], flat[2 * i + 1], flat[2 * i + 2], flat[2 * i + 3]
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = ((x - ax) * dx + (y - ay) * dy) / length2 if length2 > 0 else 0.0
            t = 0.0 if t < 0 else 1.0 if t > 1 else t
            qx, qy = ax + t * dx, ay + t * dy
            d2 = (x - qx) ** 2 + (y - qy) ** 2
            if d2 < best[0]:
                best = (d2, qx, qy)
        return best[1], best[2], math.sqrt(best[0])
