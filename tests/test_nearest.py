"""The kd-tree nearest search on polygon rings: hand-made answers and agreement with GEOS."""
import math

import numpy as np
import pytest
import shapely
from shapes import jagged_polygon

from portal.coverage.nearest import BoundaryIndex


def square(x0, y0, side):
    """Return an axis-aligned square with its lower-left corner at (x0, y0), in metres."""
    return shapely.box(x0, y0, x0 + side, y0 + side)


def test_nearest_point_on_a_long_edge_not_only_at_vertices():
    # One 1 km square: from 300 m south of the middle of its bottom edge, the nearest point is
    # that middle (no vertex there), 300 m away.
    index = BoundaryIndex(np.array([square(0, 0, 1000)]))
    qx, qy, d = index.nearest(537.0, -300.0)
    assert (qx, qy) == pytest.approx((537.0, 0.0))
    assert d == pytest.approx(300.0)


def test_edges_longer_than_the_search_reach_are_still_exact():
    # The square has its four corners only; from 250 m east of its east edge the answer must
    # be the foot of the perpendicular on that edge, not a corner (400 m and more away).
    index = BoundaryIndex(np.array([square(0, 0, 1000)]))
    qx, qy, d = index.nearest(1250.0, 400.0)
    assert (qx, qy, d) == pytest.approx((1000.0, 400.0, 250.0))


def test_inner_ring_counts_as_boundary():
    # A 1 km square with a 200 m hole in the middle: from the hole's centre the nearest
    # boundary is the hole's edge, 100 m away.
    outer = square(0, 0, 1000)
    hole = square(400, 400, 200)
    index = BoundaryIndex(np.array([outer.difference(hole)]))
    _, _, d = index.nearest(500.0, 500.0)
    assert d == pytest.approx(100.0)


def test_picks_the_nearer_of_two_polygons():
    index = BoundaryIndex(np.array([square(0, 0, 100), square(1000, 0, 100)]))
    qx, qy, d = index.nearest(700.0, 50.0)
    assert (qx, qy, d) == pytest.approx((1000.0, 50.0, 300.0))


def test_no_polygons_no_answer():
    assert BoundaryIndex(np.array([], dtype=object)).nearest(0.0, 0.0) is None


def test_groups_are_searched_apart_in_one_call():
    # Group 0: a square 300 m east of the point; group 2: a square 700 m west; group 1 has
    # nothing. Each group answers with its own square, whatever the other groups hold.
    polys = np.array([square(1000, 0, 100), square(0, 0, 100), square(1200, 0, 100)])
    index = BoundaryIndex(polys, groups=[0, 2, 0])
    assert index.nearest(800.0, 50.0, group=0) == pytest.approx((1000.0, 50.0, 200.0))
    assert index.nearest(800.0, 50.0, group=2) == pytest.approx((100.0, 50.0, 700.0))
    assert index.nearest(800.0, 50.0, group=1) is None
    assert [index.has_rings(g) for g in range(4)] == [True, False, True, False]
    both = index.nearest_groups(800.0, 50.0, 0b101)
    assert both[0] == pytest.approx([1000.0, 50.0, 200.0])
    assert both[2] == pytest.approx([100.0, 50.0, 700.0])
    assert all(math.isnan(v) for v in both[1])
    # Not asked, not searched.
    assert all(math.isnan(v) for v in index.nearest_groups(800.0, 50.0, 0b001)[2])


def test_agrees_with_geos_on_random_jagged_polygons():
    rng = np.random.default_rng(7)
    polys = []
    for _ in range(300):
        cx, cy = rng.uniform(0, 20_000, 2)
        poly = jagged_polygon(rng, cx, cy, rng.uniform(20, 600, int(rng.integers(5, 60))))
        polys.extend(p for p in shapely.get_parts(poly) if isinstance(p, shapely.Polygon))
    geoms = np.array(polys, dtype=object)
    rings = shapely.boundary(geoms)
    index = BoundaryIndex(geoms)
    far = [(-100_000.0, 10_000.0), (10_000.0, 250_000.0), (30_000.0, -40_000.0)]
    for x, y in [*rng.uniform(-5_000, 25_000, (400, 2)).tolist(), *far]:
        qx, qy, d = index.nearest(float(x), float(y))
        expected = float(shapely.distance(rings, shapely.Point(x, y)).min())
        assert d == pytest.approx(expected, abs=1e-6)
        # The returned point is on a ring and at that distance.
        assert math.hypot(qx - x, qy - y) == pytest.approx(d, abs=1e-6)
        assert float(shapely.distance(rings, shapely.Point(qx, qy)).min()) < 1e-6
