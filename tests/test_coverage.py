"""CoverageIndex on hand-made geometry whose answers are worked out on paper.

Shapes are drawn in metres on an azimuthal equidistant plane centred at
(lon 28.0, lat 57.8) and stored in lon/lat like real layers. Distances from
that centre along a straight line through it are exact on the ground, which
is what makes the expected figures below checkable by hand.
"""
import math

import numpy as np
import pyproj
import pytest
import shapely

from portal.coverage.index import TECH_ORDER, CoverageIndex
from portal.data.layers import Area, Town

LON0, LAT0 = 28.0, 57.8
GEOD = pyproj.Geod(ellps="WGS84")
AEQD = pyproj.Transformer.from_crs(
    "EPSG:4326", f"+proj=aeqd +lat_0={LAT0} +lon_0={LON0} +datum=WGS84 +units=m", always_xy=True
)


def ll(x: float, y: float) -> tuple[float, float]:
    """Return the lon/lat of a point given in metres east and north of the centre."""
    return AEQD.transform(x, y, direction="INVERSE")


def rect(x0, y0, x1, y1, hole=None) -> shapely.Polygon:
    """Return a lon/lat polygon whose corners sit at metric positions (with an optional hole)."""
    ring = [ll(x0, y0), ll(x1, y0), ll(x1, y1), ll(x0, y1)]
    if hole is None:
        return shapely.Polygon(ring)
    hx0, hy0, hx1, hy1 = hole
    return shapely.Polygon(ring, [[ll(hx0, hy0), ll(hx1, hy0), ll(hx1, hy1), ll(hx0, hy1)]])


def town(slug, geom) -> Town:
    """Return a town record for an extent."""
    c = geom.centroid
    return Town(slug=slug, name=slug.title(), name_ru=None, population=None, lat=c.y, lon=c.x, geometry=geom)


def answer_at(index, x, y, **kw):
    """Return the point answer at a metric position."""
    lon, lat = ll(x, y)
    return index.point_answer(lat, lon)


# -- a world for point answers ---------------------------------------------------

POINT_AREAS = [
    Area("fiber", "live", rect(-500, -500, 500, 500, hole=(-100, -100, 100, 100)), 500, 250, feature_id="f1"),
    Area("fiber", "live", rect(200, 200, 500, 500), 1000, 500, feature_id="f2"),
    Area("cable", "live", rect(4000, -500, 5000, 500), 300, 30, feature_id="c1"),
    Area("dsl", "live", shapely.box(28.12, 57.80, 28.13, 57.81), 50, 10, feature_id="d1"),
    Area("cable", "planned", rect(-500, -500, 500, 500), 600, 60, "2026-09-01", feature_id="p1"),
    Area("cable", "planned", rect(-500, -500, 0, 500), 600, 60, "2026-06-01", feature_id="p2"),
    Area("fiber", "planned", rect(-500, 800, 500, 1200), 1000, 500, "2027-01-01", feature_id="p3"),
    Area("wireless", "planned", rect(-3000, -3000, -2000, -2000), 30, 5, "2027-05-01", feature_id="w1"),
]
POINT_TOWNS = [town("big", rect(-2000, -2000, 2000, 2000)), town("small", rect(-600, -600, 600, 600))]


@pytest.fixture(scope="module")
def index():
    return CoverageIndex(POINT_AREAS, POINT_TOWNS)


def test_answer_has_exactly_the_contract_fields(index):
    a = answer_at(index, -300, -300)
    assert set(a) == {"lat", "lon", "town", "available", "planned", "nearest"}
    assert set(a["nearest"]["cable"]) == {"distance_m", "direction", "lat", "lon", "connection"}
    assert isinstance(a["nearest"]["cable"]["distance_m"], int)


def test_point_inside_fiber(index):
    a = answer_at(index, -300, -300)
    assert a["available"] == [{"technology": "fiber", "max_down_mbps": 500, "max_up_mbps": 250}]
    # Both planned cable areas cover the point: the earlier date wins.
    assert a["planned"] == [{"technology": "cable", "available_from": "2026-06-01"}]
    assert set(a["nearest"]) == {"cable", "dsl"}  # fiber is here; wireless is nowhere live
    cable = a["nearest"]["cable"]
    assert cable["distance_m"] == pytest.approx(4300, abs=2)
    assert cable["direction"] == "E"
    assert cable["connection"] == "network_extension"
    # The smaller of two nested extents.
    assert a["town"] == {"slug": "small", "name": "Small", "name_ru": None}


def test_overlapping_areas_of_one_technology_report_the_best_speeds(index):
    a = answer_at(index, 300, 300)
    assert a["available"] == [{"technology": "fiber", "max_down_mbps": 1000, "max_up_mbps": 500}]
    assert a["planned"] == [{"technology": "cable", "available_from": "2026-09-01"}]


def test_unknown_speeds_dates_and_technologies_in_a_point_answer():
    """An unknown speed gives way to a known one, and stays unknown alone; a planned area without
    a date still makes the technology planned, dated by any area that has one; a technology
    the portal does not know is left out; a speed reads as the layer gave it (an integer stays one)."""
    areas = [
        Area("fiber", "live", rect(-500, -500, 500, 500), None, None, feature_id="a"),
        Area("fiber", "live", rect(0, -500, 500, 500), 300, None, feature_id="b"),
        Area("cable", "live", rect(-500, -500, 500, 500), None, None, feature_id="c"),
        Area("dsl", "planned", rect(-500, -500, 500, 500), None, None, None, feature_id="d"),
        Area("wireless", "planned", rect(-500, -500, 500, 500), None, None, None, feature_id="e"),
        Area("wireless", "planned", rect(0, -500, 500, 500), None, None, "2027-03-01", feature_id="f"),
        Area("satellite", "live", rect(-500, -500, 500, 500), 100, 10, feature_id="g"),
    ]
    index = CoverageIndex(areas, [])
    west, east = answer_at(index, -250, 0), answer_at(index, 250, 0)
    assert west["available"] == [{"technology": "fiber", "max_down_mbps": None, "max_up_mbps": None},
                                 {"technology": "cable", "max_down_mbps": None, "max_up_mbps": None}]
    assert east["available"][0] == {"technology": "fiber", "max_down_mbps": 300, "max_up_mbps": None}
    assert type(east["available"][0]["max_down_mbps"]) is int
    assert west["planned"] == [{"technology": "dsl", "available_from": None},
                               {"technology": "wireless", "available_from": None}]
    assert east["planned"][1] == {"technology": "wireless", "available_from": "2027-03-01"}
    assert west["town"] is None and set(west["nearest"]) == set()


def test_point_on_the_edge_is_covered(index):
    lon, lat = ll(500, 500)  # a corner of the fiber square, exactly on its boundary
    assert [x["technology"] for x in index.point_answer(lat, lon)["available"]] == ["fiber"]
    a = index.point_answer(57.805, 28.13)  # on the east edge of the dsl box
    assert [x["technology"] for x in a["available"]] == ["dsl"]
    assert "dsl" not in a["nearest"]


def test_point_in_a_hole_is_not_covered_and_the_ring_is_nearest(index):
    a = answer_at(index, -40, 0)
    assert a["available"] == []
    fiber = a["nearest"]["fiber"]
    assert fiber["distance_m"] == pytest.approx(60, abs=1)
    assert fiber["direction"] == "W"
    assert fiber["connection"] == "standard_drop"
    hole_lon, hole_lat = ll(-100, 0)
    assert GEOD.inv(fiber["lon"], fiber["lat"], hole_lon, hole_lat)[2] < 0.5


def test_point_1000_m_east_of_the_square(index):
    lon, lat = ll(1500, 0)
    a = index.point_answer(lat, lon)
    fiber = a["nearest"]["fiber"]
    assert fiber["distance_m"] == pytest.approx(1000, abs=1)
    assert fiber["direction"] == "W"
    assert fiber["connection"] == "network_extension"
    # The reported point is where the east edge is nearest, and the distance to it is geodesic.
    edge_lon, edge_lat = ll(500, 0)
    assert GEOD.inv(fiber["lon"], fiber["lat"], edge_lon, edge_lat)[2] < 0.5
    assert GEOD.inv(lon, lat, fiber["lon"], fiber["lat"])[2] == pytest.approx(fiber["distance_m"], abs=1)
    assert GEOD.inv(lon, lat, edge_lon, edge_lat)[2] == pytest.approx(1000, abs=0.01)
    assert a["town"]["slug"] == "big"


def test_distance_is_not_degrees(index):
    lon, lat = ll(1500, 0)
    edge_lon, edge_lat = ll(500, 0)
    degrees = math.hypot(lon - edge_lon, lat - edge_lat)  # ~0.0168, what a 4326 distance would say
    distance = index.point_answer(lat, lon)["nearest"]["fiber"]["distance_m"]
    assert distance != round(degrees)
    # Nor degrees times 111 km: at 57.8 N a degree of longitude is only ~59 km.
    assert abs(distance - degrees * 111_320) > 500
    assert distance == pytest.approx(1000, abs=1)


def test_point_100_m_away_is_a_standard_drop(index):
    a = answer_at(index, 600, 0)
    fiber = a["nearest"]["fiber"]
    assert fiber["distance_m"] == pytest.approx(100, abs=1)
    assert (fiber["direction"], fiber["connection"]) == ("W", "standard_drop")
    assert a["nearest"]["cable"]["distance_m"] == pytest.approx(3400, abs=2)
    assert a["nearest"]["cable"]["direction"] == "E"


def test_drop_distance_is_configurable():
    strict = CoverageIndex(POINT_AREAS, POINT_TOWNS, drop_distance_m=50)
    assert answer_at(strict, 600, 0)["nearest"]["fiber"]["connection"] == "network_extension"


def test_planned_fiber_where_fiber_is_not_live(index):
    a = answer_at(index, 0, 1000)
    assert a["available"] == []
    assert a["planned"] == [{"technology": "fiber", "available_from": "2027-01-01"}]
    assert a["nearest"]["fiber"]["distance_m"] == pytest.approx(500, abs=1)
    assert a["nearest"]["fiber"]["direction"] == "S"


def test_planned_only_technology_has_no_nearest(index):
    a = answer_at(index, -2500, -2500)
    assert a["planned"] == [{"technology": "wireless", "available_from": "2027-05-01"}]
    assert "wireless" not in a["nearest"]
    assert set(a["nearest"]) == {"fiber", "cable", "dsl"}
    assert list(a["nearest"]) == [t for t in TECH_ORDER if t in a["nearest"]]


def test_point_outside_every_town(index):
    assert answer_at(index, 2500, 2500)["town"] is None


@pytest.mark.parametrize(
    "lat, lon", [(-57.8, -152.0), (0.0, 0.0), (89.99, 0.0), (-89.99, 179.99), (57.8, 180.0), (90.0, 0.0)]
)
def test_points_far_from_all_data_do_not_crash(index, lat, lon):
    a = index.point_answer(lat, lon)
    assert a["available"] == [] and a["town"] is None
    assert set(a["nearest"]) == {"fiber", "cable", "dsl"}
    for entry in a["nearest"].values():
        assert entry["distance_m"] > 1_000_000
        assert entry["direction"] in {"N", "NE", "E", "SE", "S", "SW", "W", "NW"}
        assert entry["connection"] == "network_extension"


def test_bulk_answers_match_single_answers(index):
    points = [ll(-300, -300), ll(1500, 0), ll(2500, 2500)]
    lons, lats = zip(*points)
    assert index.bulk_point_answers(lats, lons) == [index.point_answer(la, lo) for lo, la in points]


def test_areas_in_bbox_and_bounds(index):
    dsl = index.areas_in_bbox((28.115, 57.795, 28.14, 57.815))
    assert [a.feature_id for a in dsl] == ["d1"]
    assert [a.feature_id for a in index.areas_in_bbox(None)] == [a.feature_id for a in POINT_AREAS]
    light = index.areas_in_bbox(None, tolerance_m=10)
    assert len(light) == len(POINT_AREAS)
    coords = shapely.get_coordinates([a.geometry for a in light])
    assert np.allclose(coords * 1e5, np.round(coords * 1e5), atol=1e-6)
    assert light[0].technology == "fiber" and len(light[0].geometry.interiors) == 1
    everything = [a.geometry for a in POINT_AREAS] + [t.geometry for t in POINT_TOWNS]
    assert index.bounds == pytest.approx(tuple(shapely.total_bounds(everything)))


def test_empty_index():
    empty = CoverageIndex([], [])
    assert empty.point_answer(57.8, 28.0) == {
        "lat": 57.8, "lon": 28.0, "town": None, "available": [], "planned": [], "nearest": {},
    }
    assert empty.bounds is None
    assert empty.all_town_summaries() == {}
    assert empty.areas_in_bbox(None) == []


# -- a world for town shares -----------------------------------------------------

SHARE_AREAS = [
    Area("fiber", "live", rect(-1000, -500, 0, 500), 300, 100),  # the west half of town t
    Area("fiber", "live", rect(-1000, -500, -500, 500), 500, 200),  # inside the first: not counted twice
    Area("cable", "live", rect(500, -2000, 3000, 2000), 200, 20),  # reaches outside: 0.25 inside
    Area("dsl", "planned", rect(-1000, -500, 1000, 500), 20, 2, "2026-09-01"),
    Area("dsl", "planned", rect(-200, -200, 200, 200), 20, 2, "2026-05-15"),
    Area("fiber", "planned", rect(0, -500, 1000, 500), 1000, 500, "2027-03-01"),
    Area("wireless", "live", rect(1000, -500, 2000, 500), 30, 5),  # shares only t's east edge
    Area("fiber", "planned", rect(5000, -500, 6000, 500), 1000, 500, "2026-12-01"),
    Area("cable", "live", rect(-1000, 3000, 0, 4000), 100, 10),
    Area("dsl", "live", rect(-1000, 3000, 1000, 4000), 20, 2),
]
SHARE_TOWNS = [
    town("t", rect(-1000, -500, 1000, 500)),  # 2 km x 1 km
    town("u", rect(5000, -500, 6000, 500)),
    town("v", rect(10000, -500, 11000, 500)),
    town("w", rect(-1000, 3000, 1000, 4000)),
]


@pytest.fixture(scope="module")
def shares():
    return CoverageIndex(SHARE_AREAS, SHARE_TOWNS)


def test_town_shares(shares):
    s = shares.town_summary("t")
    rows = [(e["technology"], e["status"]) for e in s["technologies"]]
    assert rows == [("fiber", "live"), ("fiber", "planned"), ("cable", "live"), ("dsl", "planned")]
    by = {(e["technology"], e["status"]): e for e in s["technologies"]}
    assert by["fiber", "live"]["share"] == pytest.approx(0.5, abs=0.001)
    assert by["fiber", "planned"]["share"] == pytest.approx(0.5, abs=0.001)
    assert by["cable", "live"]["share"] == pytest.approx(0.25, abs=0.001)
    assert by["dsl", "planned"]["share"] == pytest.approx(1.0, abs=0.001)
    assert (by["fiber", "live"]["max_down_mbps"], by["fiber", "live"]["max_up_mbps"]) == (500, 200)
    assert by["fiber", "live"]["available_from"] is None
    assert by["dsl", "planned"]["available_from"] == "2026-05-15"
    assert by["fiber", "planned"]["available_from"] == "2027-03-01"
    assert s["has_fiber"] is True and s["best"] == "fiber"
    assert s["fiber_share"] == pytest.approx(0.5, abs=0.001)
    assert set(s["technologies"][0]) == {
        "technology", "status", "share", "max_down_mbps", "max_up_mbps", "available_from",
    }


def authalic_q(lat_deg: float) -> float:
    """Return Snyder's q(phi) for WGS 84: band areas are proportional to differences of q."""
    e2 = 0.00669437999014
    e = math.sqrt(e2)
    s = math.sin(math.radians(lat_deg))
    return (1 - e2) * (s / (1 - e2 * s * s) - 1 / (2 * e) * math.log((1 - e * s) / (1 + e * s)))


def test_share_is_measured_on_an_equal_area_plane_not_in_degrees():
    # A 1 x 2 degree town with fiber on its southern degree: half in degrees, but the
    # southern band is wider on the ground (meridians converge northward).
    extent = shapely.segmentize(shapely.box(28.0, 57.0, 29.0, 59.0), 0.01)
    south = shapely.segmentize(shapely.box(28.0, 57.0, 29.0, 58.0), 0.01)
    index = CoverageIndex([Area("fiber", "live", south)], [town("tall", extent)])
    expected = (authalic_q(58.0) - authalic_q(57.0)) / (authalic_q(59.0) - authalic_q(57.0))
    assert expected == pytest.approx(0.507, abs=0.001)
    assert index.town_summary("tall")["fiber_share"] == pytest.approx(expected, abs=0.001)
    assert shapely.area(south) / shapely.area(extent) == pytest.approx(0.5)  # what degrees would say


def test_only_planned_fiber_is_not_fiber(shares):
    s = shares.town_summary("u")
    assert s["has_fiber"] is False and s["best"] is None and s["fiber_share"] == 0.0
    assert s["technologies"] == [{
        "technology": "fiber", "status": "planned", "share": 1.0,
        "max_down_mbps": 1000, "max_up_mbps": 500, "available_from": "2026-12-01",
    }]


def test_town_without_coverage_and_best_without_fiber(shares):
    empty = {"has_fiber": False, "best": None, "fiber_share": 0.0, "technologies": []}
    assert shares.town_summary("v") == empty
    w = shares.town_summary("w")
    assert (w["best"], w["has_fiber"]) == ("cable", False)
    assert [(e["technology"], e["share"]) for e in w["technologies"]] == [("cable", 0.5), ("dsl", 1.0)]


def test_unknown_town_is_a_key_error(shares):
    with pytest.raises(KeyError):
        shares.town_summary("nowhere")


def test_all_town_summaries_agree_with_single_ones():
    fresh = CoverageIndex(SHARE_AREAS, SHARE_TOWNS)
    every = fresh.all_town_summaries()
    assert list(every) == ["t", "u", "v", "w"]
    single = CoverageIndex(SHARE_AREAS, SHARE_TOWNS)
    assert every == {slug: single.town_summary(slug) for slug in every}


def test_cached_summaries_cannot_be_changed_by_a_caller(shares):
    s = shares.town_summary("t")
    s["technologies"][0]["share"] = 99
    s["incidents"] = []
    again = shares.town_summary("t")
    assert again["technologies"][0]["share"] == pytest.approx(0.5, abs=0.001)
    assert "incidents" not in again


def test_nearest_on_long_rings_and_multipolygons_matches_a_brute_force_distance():
    # A 3,000-vertex wavy ring (split into many pieces inside the index) and a two-part area.
    angles = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    radius = 1000 + 150 * np.sin(7 * angles)
    wavy_m = shapely.Polygon(np.column_stack((radius * np.sin(angles), radius * np.cos(angles))))
    two_m = shapely.MultiPolygon([shapely.box(3000, 0, 3500, 500), shapely.box(3000, -2000, 3500, -1500)])
    to_ll = lambda g: shapely.transform(g, lambda c: np.column_stack(ll(c[:, 0], c[:, 1])))  # noqa: E731
    index = CoverageIndex([Area("fiber", "live", to_ll(wavy_m)), Area("cable", "live", to_ll(two_m))], [])
    rng = np.random.default_rng(7)
    for x, y in rng.uniform(-2500, 2500, (25, 2)):
        point_m = shapely.Point(x, y)
        a = answer_at(index, x, y)
        for technology, shape in (("fiber", wavy_m), ("cable", two_m)):
            if shape.intersects(point_m):
                assert technology in [e["technology"] for e in a["available"]]
                continue
            # Small distances near the plane's centre are true to well under a metre.
            expected = shapely.distance(shape, point_m)
            assert a["nearest"][technology]["distance_m"] == pytest.approx(expected, abs=1 + expected * 1e-3)
