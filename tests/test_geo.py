"""Projections, geodesic distance, compass and display geometry against independent figures."""
import math

import numpy as np
import pyproj
import pytest
import shapely

from portal.coverage.geo import (
    LocalProjection,
    azimuth_to_compass,
    bounds_around,
    compass,
    display_geometry,
    geodesic_distance_m,
    to_geojson,
)

LON0, LAT0 = 28.0, 57.8
GEOD = pyproj.Geod(ellps="WGS84")


def metres_per_degree_of_latitude(lat: float) -> float:
    """Return the published series for the length of one degree of latitude (WGS 84)."""
    phi = math.radians(lat)
    return 111132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)


def test_one_degree_of_latitude_near_57_8():
    expected = metres_per_degree_of_latitude(LAT0)  # ~111,374 m
    assert geodesic_distance_m(LON0, LAT0 - 0.5, LON0, LAT0 + 0.5) == pytest.approx(expected, abs=5)
    assert 111_300 < expected < 111_450


def test_geodesic_distance_is_metres_not_degrees():
    lon, lat, _ = GEOD.fwd(LON0, LAT0, 90, 1000.0)
    assert geodesic_distance_m(LON0, LAT0, lon, lat) == pytest.approx(1000.0, abs=1e-6)
    assert geodesic_distance_m(LON0, LAT0, LON0, LAT0) == 0.0


@pytest.mark.parametrize(
    "azimuth, expected",
    [(0, "N"), (45, "NE"), (90, "E"), (135, "SE"), (180, "S"), (225, "SW"), (270, "W"), (315, "NW")],
)
def test_compass_eight_directions(azimuth, expected):
    lon, lat, _ = GEOD.fwd(LON0, LAT0, azimuth, 1000.0)
    assert compass(LON0, LAT0, lon, lat) == expected


def test_compass_sectors_are_centred_on_each_direction():
    assert azimuth_to_compass(22.4) == "N"
    assert azimuth_to_compass(22.6) == "NE"
    assert azimuth_to_compass(-22.4) == "N"
    assert azimuth_to_compass(337.4) == "NW"
    assert azimuth_to_compass(-90) == "W"
    assert azimuth_to_compass(180.0) == "S"
    assert azimuth_to_compass(-180.0) == "S"


def test_compass_due_west_and_due_north_by_coordinates():
    assert compass(28.02, LAT0, LON0, LAT0) == "W"
    assert compass(LON0, LAT0, LON0, LAT0 + 0.01) == "N"


def test_metric_projection_is_centred_and_keeps_distances_from_the_centre():
    proj = LocalProjection(LON0, LAT0)
    x, y = proj.point_to_metric(LON0, LAT0)
    assert (x, y) == pytest.approx((0.0, 0.0), abs=1e-6)
    lon, lat, _ = GEOD.fwd(LON0, LAT0, 90, 1000.0)
    assert proj.point_to_metric(lon, lat) == pytest.approx((1000.0, 0.0), abs=1e-3)
    lon, lat, _ = GEOD.fwd(LON0, LAT0, 0, 2500.0)
    assert proj.point_to_metric(lon, lat) == pytest.approx((0.0, 2500.0), abs=1e-3)
    assert proj.metric_to_lonlat(*proj.point_to_metric(28.3, 57.6)) == pytest.approx((28.3, 57.6), abs=1e-9)


def test_to_metric_and_back_are_vectorised():
    proj = LocalProjection(LON0, LAT0)
    geoms = np.array([shapely.box(28.0, 57.8, 28.01, 57.81), shapely.Point(28.02, 57.79), None], dtype=object)
    metric = proj.to_metric(geoms)
    assert len(metric) == 3 and metric[2] is None
    assert metric[1].x == pytest.approx(proj.point_to_metric(28.02, 57.79)[0])
    back = proj.from_metric(metric)
    assert shapely.equals_exact(back[0], geoms[0], tolerance=1e-9)
    # A scalar goes through the same path.
    assert isinstance(proj.to_metric(shapely.Point(LON0, LAT0)), shapely.Point)


def test_equal_area_matches_the_geodesic_area():
    proj = LocalProjection(LON0, LAT0)
    square = shapely.box(27.9, 57.75, 28.1, 57.85)
    geodesic_area = abs(GEOD.geometry_area_perimeter(square)[0])
    assert shapely.area(proj.to_equal_area(square)) == pytest.approx(geodesic_area, rel=1e-4)
    # The equidistant projection would be the wrong tool and the test proves it is different.
    assert shapely.area(square) < 1  # degrees squared: what not to report


def test_for_bounds_centres_on_the_box():
    proj = LocalProjection.for_bounds(27.0, 57.0, 29.0, 58.0)
    assert (proj.lon0, proj.lat0) == (28.0, 57.5)


def _circle(lon, lat, radius_m, n):
    """Return a lon/lat polygon of n vertices around a point (built with the geodesic)."""
    az = np.linspace(0, 360, n, endpoint=False)
    lons, lats, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius_m))
    return shapely.Polygon(np.column_stack((lons, lats)))


def test_display_geometry_simplifies_in_metres_and_rounds():
    proj = LocalProjection(LON0, LAT0)
    circle = _circle(LON0, LAT0, 1000.0, 2000)
    light = display_geometry(circle, 20.0, proj)
    assert light.is_valid
    assert len(shapely.get_coordinates(light)) < 100 < len(shapely.get_coordinates(circle))
    coords = shapely.get_coordinates(light)
    assert np.allclose(coords * 1e5, np.round(coords * 1e5), atol=1e-6)
    # Chords cut at most 20 m into a 1 km circle: under 4 % of its area.
    assert shapely.area(proj.to_equal_area(light)) == pytest.approx(
        shapely.area(proj.to_equal_area(circle)), rel=0.04
    )
    # Every vertex of the light shape stays within the tolerance (+ rounding) of the original.
    assert shapely.hausdorff_distance(proj.to_metric(light), proj.to_metric(circle)) < 22


def test_display_geometry_drops_what_vanishes_and_keeps_arrays_aligned():
    proj = LocalProjection(LON0, LAT0)
    tiny = _circle(LON0, LAT0, 0.2, 8)  # far below the ~1 m grid
    assert display_geometry(tiny, 5.0, proj) is None
    assert display_geometry(shapely.Polygon(), 5.0, proj) is None
    square = shapely.box(28.0, 57.8, 28.01, 57.81)
    out = display_geometry(np.array([square, tiny, None], dtype=object), 5.0, proj)
    assert len(out) == 3 and out[1] is None and out[2] is None
    assert shapely.equals(out[0], square)


def test_bounds_around_reaches_the_radius_on_the_ground():
    minlon, minlat, maxlon, maxlat = bounds_around(LON0, LAT0, 1000.0)
    assert geodesic_distance_m(LON0, LAT0, LON0, maxlat) == pytest.approx(1000.0, abs=0.01)
    assert geodesic_distance_m(LON0, LAT0, LON0, minlat) == pytest.approx(1000.0, abs=0.01)
    # East-west the box is wider in degrees than north-south: cos(57.8) ~ 0.53.
    assert (maxlon - minlon) / (maxlat - minlat) == pytest.approx(1 / math.cos(math.radians(LAT0)), rel=0.01)
    west, _, east, north = bounds_around(0.0, 89.995, 1000.0)
    assert (west, east, north) == (-180.0, 180.0, 90.0)


def test_to_geojson():
    assert to_geojson(shapely.Point(28.0, 57.8)) == {"type": "Point", "coordinates": [28.0, 57.8]}
    assert to_geojson(None) is None
    assert to_geojson(shapely.Polygon()) is None


def test_scalar_and_array_projection_paths_agree():
    proj = LocalProjection(LON0, LAT0)
    lons, lats = np.array([27.0, 28.3, 31.5, -150.0]), np.array([56.0, 57.6, 59.9, -50.0])
    xs, ys = proj.point_to_metric(lons, lats)
    for lon, lat, x, y in zip(lons.tolist(), lats.tolist(), xs, ys):
        assert proj.point_to_metric(lon, lat) == pytest.approx((x, y), abs=1e-3)
    lon_back, lat_back = proj.metric_to_lonlat(xs, ys)
    assert proj.metric_to_lonlat(float(xs[1]), float(ys[1])) == pytest.approx((lon_back[1], lat_back[1]), abs=1e-12)
    x, y = proj.point_to_metric(np.array([28.0]), np.array([58.0]))
    assert proj.point_to_metric(28, 58) == pytest.approx((x[0], y[0]), abs=1e-6)  # ints take the scalar path
