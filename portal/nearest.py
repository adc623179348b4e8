"""Exact nearest point on the boundaries of a set of polygons, in planar metres.

The rings are densified so that no segment is longer than L = ``step_m`` and their vertices
go into a kd-tree. A segment whose two ends are both at least r from a point p is at least
sqrt(r² - (L/2)²) from p (the foot of the perpendicular is within L/2 of one end). The nearest
vertex, at distance d, is itself a boundary point, so the nearest boundary point lies on a
segment with an end within sqrt(d² + (L/2)²) of p; visiting vertices nearest first and
tightening d as nearer segment points turn up, measuring the segments of those few vertices
exactly gives the same answer as measuring every segment. A kd-tree of plain coordinates is
also a fraction of the memory of a tree of geometries.
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
# Neighbours fetched in the first look; at 100,000 polygons 16 sufficed for all of 25,656
# searches (20,000 points). A search that needs more asks again for eight times as many.
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
        quarter = (self.step_m / 2) ** 2
        k = min(FIRST_K, n)
        while True:
            dist, idx = self._tree.query(query, k=k)
            dist, idx = np.reshape(dist, -1).tolist(), np.reshape(idx, -1).tolist()
            # A segment no longer than step_m whose ends are both r or more away is at least
            # sqrt(r² - (step_m / 2)²) away; the nearest vertex is a boundary point at
            # dist[0], so only vertices within sqrt(dist[0]² + (step_m / 2)²) can lead to a
            # nearer one. They must all be among those fetched.
            if k == n or dist[-1] ** 2 > dist[0] ** 2 + quarter:
                break
            k = min(n, k * 8)
        joined, flat = self._joined, self._flat
        best = (dist[0] ** 2, flat[2 * idx[0]], flat[2 * idx[0] + 1])
        seen = set()
        for i, d in zip(idx, dist):
            # Vertices come nearest first; the bound tightens as nearer segments are found.
            if d * d > best[0] + quarter + 1e-9 * (1 + d * d):
                break
            for start in (i, i - 1):
                if start < 0 or start in seen or not joined[start]:
                    continue
                seen.add(start)
                j = 2 * start
                ax, ay, bx, by = flat[j], flat[j + 1], flat[j + 2], flat[j + 3]
                dx, dy = bx - ax, by - ay
                length2 = dx * dx + dy * dy
                t = ((x - ax) * dx + (y - ay) * dy) / length2 if length2 > 0 else 0.0
                t = 0.0 if t < 0 else 1.0 if t > 1 else t
                qx, qy = ax + t * dx, ay + t * dy
                d2 = (x - qx) ** 2 + (y - qy) ** 2
                if d2 < best[0]:
                    best = (d2, qx, qy)
        return best[1], best[2], math.sqrt(best[0])
