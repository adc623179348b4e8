"""The compiled point-in-polygon grid: hand-made answers and agreement with GEOS."""
import math

import numpy as np
import shapely
from shapes import jagged_polygon

from portal.coverage.locate import PolygonIndex


def objects(*geoms):
    """Return a 1-D object array of geometries."""
    out = np.empty(len(geoms), dtype=object)
    out[:] = geoms
    return out


def test_inside_outside_and_on_the_edge_of_squares():
    index = PolygonIndex(objects(shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)))
    assert index.containing(5, 5) == [0]
    assert index.containing(25, 5) == [1]
    assert index.containing(15, 5) == []
    # A point on an edge or a corner counts, as GEOS intersects says.
    assert index.containing(10, 5) == [0]
    assert index.containing(0, 0) == [0]
    assert index.containing(30, 10) == [1]
    assert index.containing(10.000001, 5) == []
    # Far away, and beyond the grid on every side.
    assert index.containing(-1e6, 5) == []
    assert index.containing(5, 1e6) == []


def test_overlapping_polygons_are_all_returned_in_index_order():
    index = PolygonIndex(objects(shapely.box(0, 0, 100, 100), shapely.box(40, 40, 60, 60),
                                 shapely.box(50, 50, 200, 200)))
    assert index.containing(55, 55) == [0, 1, 2]
    assert index.containing(45, 45) == [0, 1]
    assert index.containing(150, 150) == [2]


def test_a_hole_is_outside_but_its_edge_is_on_the_polygon():
    ring = shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6))
    index = PolygonIndex(objects(ring))
    assert index.containing(5, 5) == []
    assert index.containing(4, 5) == [0]
    assert index.containing(2, 5) == [0]


def test_multipolygon_parts_and_the_gap_between_them():
    multi = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(3, 0, 4, 1)])
    index = PolygonIndex(objects(multi))
    assert index.containing(0.5, 0.5) == [0]
    assert index.containing(3.5, 0.5) == [0]
    assert index.containing(2, 0.5) == []


def test_diagonal_edges_and_a_point_level_with_a_vertex():
    # A diamond: the ray from (0, 0) eastwards passes exactly through the vertex (2, 0).
    diamond = shapely.Polygon([(0, -2), (2, 0), (0, 2), (-2, 0)])
    index = PolygonIndex(objects(diamond))
    assert index.containing(0, 0) == [0]
    assert index.containing(1, 1) == [0]  # on the edge from (2, 0) to (0, 2)
    assert index.containing(-3, 0) == []  # level with two vertices, outside
    assert index.containing(2, 0) == [0]
    assert index.containing(1.5, 1) == []


def test_invalid_polygons_get_the_same_answer_as_geos():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    index = PolygonIndex(objects(bowtie, shapely.box(5, 5, 6, 6)))
    for x, y in [(0.5, 1), (1.5, 1), (1, 1), (1, 0.2), (5.5, 5.5), (3, 3)]:
        expected = [i for i, g in enumerate([bowtie, shapely.box(5, 5, 6, 6)])
                    if shapely.intersects_xy(g, x, y)]
        assert index.containing(x, y) == expected


def test_no_polygons_and_empty_ones():
    assert PolygonIndex(objects()).containing(0, 0) == []
    index = PolygonIndex(objects(shapely.Polygon(), shapely.box(0, 0, 1, 1)))
    assert index.containing(0.5, 0.5) == [1]
    assert index.containing(math.nan, 0.5) == []


def test_agrees_with_geos_on_random_jagged_polygons_with_holes():
    rng = np.random.default_rng(11)
    polys = []
    for _ in range(400):
        cx, cy = rng.uniform(0, 1000, 2)
        radii = rng.uniform(2, rng.uniform(5, 120), int(rng.integers(5, 80)))
        poly = jagged_polygon(rng, cx, cy, radii)
        if rng.random() < 0.3:
            poly = poly.difference(shapely.Point(cx, cy).buffer(float(radii.min()) / 2))
        polys.append(poly)
    geoms = objects(*polys)
    index = PolygonIndex(geoms)
    points = rng.uniform(-50, 1050, (3000, 2)).tolist()
    # Vertices of the polygons are on their boundaries: they must count too.
    points += shapely.get_coordinates(geoms[:50])[::7].tolist()
    for x, y in points:
        expected = np.flatnonzero(shapely.intersects_xy(geoms, x, y)).tolist()
        assert index.containing(x, y) == expected, (x, y)


def test_geometries_that_are_not_polygons_are_asked_of_geos():
    mixed = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(2, 0), (4, 0)])])
    index = PolygonIndex(objects(mixed))
    assert index.containing(0.5, 0.5) == [0]
    assert index.containing(3, 0) == [0]
    assert index.containing(3, 1) == []


def test_cells_wholly_inside_a_large_concave_polygon_answer_without_the_ring_test():
    # Many small squares set the cell size; a large U-shaped polygon then spans many cells,
    # some wholly inside it, some in its notch (wholly outside), some on its edges.
    small = [shapely.box(x, y, x + 2, y + 2) for x in range(0, 100, 10) for y in range(0, 100, 10)]
    u_shape = shapely.box(0, 0, 100, 100).difference(shapely.box(30, 30, 70, 101))
    geoms = objects(*small, u_shape)
    index = PolygonIndex(geoms)
    big = len(small)
    assert index._inside[index._items == big].any()  # some cells skip the ring test
    assert index.containing(15, 15) == [big]
    assert index.containing(55, 55) == []  # in the notch
    assert index.containing(30, 55) == [big]  # on the notch's edge
    rng = np.random.default_rng(5)
    for x, y in rng.uniform(-5, 105, (3000, 2)).tolist():
        assert index.containing(x, y) == np.flatnonzero(shapely.intersects_xy(geoms, x, y)).tolist(), (x, y)
