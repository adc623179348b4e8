"""One verdict per technology at a point, on hand-made shapes whose figures are worked out on paper.

Shapes are drawn in metres on an azimuthal equidistant plane centred at (lon 28.0, lat 57.8) and
stored in lon/lat like real layers. Along a straight line through that centre, distances on the
plane are distances on the ground; every point asked about below lies on such a line from the
coverage it is measured to, so each expected figure is a subtraction.

    y (north)
    ^        Beta 400..800 m north (no coverage)
    |  Alpha: town -3000..-1003 east, fibre -2500..-1003; the centre is 1,003 m east of both
    |        DSL planned around the centre; cable 5,000 m east in Gamma; wireless 8,000 m south
"""
import re

import numpy as np
import pyproj
import pytest
import shapely

from portal.answers.verdicts import nearest_town_text, point_verdicts, verdict_text, with_texts, wording
from portal.coverage.index import CoverageIndex
from portal.coverage.nearest import BoundaryIndex
from portal.coverage.places import Gazetteer
from portal.data.layers import Area, Town

LON0, LAT0 = 28.0, 57.8
AEQD = pyproj.Transformer.from_crs(
    "EPSG:4326", f"+proj=aeqd +lat_0={LAT0} +lon_0={LON0} +datum=WGS84 +units=m", always_xy=True
)
DROP_M = 150


def ll(x: float, y: float) -> tuple[float, float]:
    """Return the lon/lat of a point given in metres east and north of the centre."""
    return AEQD.transform(x, y, direction="INVERSE")


def rect(x0, y0, x1, y1) -> shapely.Polygon:
    """Return a lon/lat polygon whose corners sit at metric positions."""
    return shapely.Polygon([ll(x0, y0), ll(x1, y0), ll(x1, y1), ll(x0, y1)])


def town(slug, name_ru, geom) -> Town:
    """Return a town record for an extent."""
    c = geom.centroid
    return Town(slug=slug, name=slug.title(), name_ru=name_ru, population=None, lat=c.y, lon=c.x,
                geometry=geom)


AREAS = [
    Area("fiber", "live", rect(-2500, -500, -1003, 500), 500, 250, feature_id="f1"),
    Area("cable", "live", rect(5000, -500, 6000, 500), 300, 30, feature_id="c1"),
    Area("dsl", "planned", rect(-100, -100, 100, 100), 50, 10, "2027-03-01", feature_id="d1"),
    Area("wireless", "live", rect(-500, -9000, 500, -8000), 30, 5, feature_id="w1"),
]
TOWNS = [
    town("alpha", "Альфа", rect(-3000, -1000, -1003, 1000)),
    town("beta", "Бета", rect(-200, 400, 200, 800)),
    town("gamma", "Гамма", rect(4000, -1000, 7000, 1000)),
]


@pytest.fixture(scope="module")
def world():
    """Return the coverage index and the gazetteer of the hand-made world."""
    return CoverageIndex(AREAS, TOWNS, drop_distance_m=DROP_M), Gazetteer(TOWNS)


def verdicts_at(world, x, y, lang="en"):
    """Return the verdicts (with their sentences) at a metric position, in order."""
    index, gazetteer = world
    lon, lat = ll(x, y)

    return with_texts(point_verdicts(index.point_answer(lat, lon), DROP_M, gazetteer.towns_near), lang)


def by_tech(verdicts):
    """Return the verdicts keyed by technology."""
    return {v["technology"]: v for v in verdicts}


def test_at_the_centre_each_technology_has_one_verdict_nearest_useful_first(world):
    found = verdicts_at(world, 0, 0)
    assert [(v["technology"], v["verdict"]) for v in found] == [
        ("dsl", "planned"),                 # planned right here: no extension needed
        ("fiber", "extension_needed"),      # 1,003 m
        ("cable", "extension_needed"),      # 5,000 m
        ("wireless", "none"),               # wireless is never "extended"
    ]
    v = by_tech(found)
    fiber, cable = v["fiber"], v["cable"]
    assert (fiber["distance_m"], fiber["direction"], fiber["town"]["slug"]) == (1003, "W", "alpha")
    assert (cable["distance_m"], cable["direction"], cable["town"]["slug"]) == (5000, "E", "gamma")
    assert (v["wireless"]["distance_m"], v["wireless"]["direction"]) == (8000, "S")
    assert v["dsl"]["available_from"] == "2027-03-01"


def test_sentences_in_english(world):
    texts = {v["technology"]: v["text"] for v in verdicts_at(world, 0, 0)}
    assert texts["fiber"] == ("Fiber: 1,003 m west of you, beyond a standard drop, network extension needed;"
                              " nearest town Alpha")
    # Full metres above a kilometre, not "5 km".
    assert texts["cable"] == ("Cable (DOCSIS): 5,000 m east of you, beyond a standard drop, network extension"
                              " needed; nearest town Gamma")
    assert texts["dsl"] == "DSL (phone line): planned here from 1 March 2027"
    assert texts["wireless"] == "Fixed wireless: not available here; nearest coverage 8,000 m south of you"


def test_sentences_in_russian(world):
    texts = {v["technology"]: v["text"] for v in verdicts_at(world, 0, 0, "ru")}
    # Thousands are grouped by a no-break space in Russian.
    assert texts["fiber"] == ("Оптика: 1\u00a0003 м к западу от вас, дальше стандартного подключения, нужно"
                              " расширение сети; ближайший населённый пункт — Альфа")
    assert texts["cable"].startswith("Кабель (DOCSIS): 5\u00a0000 м к востоку от вас")
    assert re.fullmatch(r"DSL \(телефонная линия\): запланировано здесь с 1 марта 2027\sг\.", texts["dsl"])


def test_within_a_standard_drop_is_available_not_missing(world):
    # 108 m east of the fibre's east edge: a standard drop, so fibre is *available*, and said first.
    found = verdicts_at(world, -1003 + 108, 0)
    first = found[0]
    assert (first["technology"], first["verdict"]) == ("fiber", "available")
    assert first["connection"] == "standard_drop"
    assert (first["distance_m"], first["direction"]) == (108, "W")
    assert first["text"] == "Fiber: available, 108 m west of you, within a standard drop"
    assert not any(v["technology"] == "fiber" and v["verdict"] != "available" for v in found)


def test_just_beyond_the_drop_is_an_extension(world):
    v = by_tech(verdicts_at(world, -1003 + DROP_M + 2, 0))["fiber"]
    assert (v["verdict"], v["distance_m"]) == ("extension_needed", DROP_M + 2)


def test_inside_coverage_is_available_with_its_speed(world):
    found = verdicts_at(world, -2000, 0)
    assert found[0]["verdict"] == "available" and found[0]["connection"] == "inside"
    assert found[0]["text"] == "Fiber: available here, up to 500 / 250 Mbit/s"
    assert found[0]["distance_m"] == 0 and found[0]["direction"] is None


def test_a_technology_nowhere_live_nor_planned_is_none_without_figures():
    index = CoverageIndex([AREAS[0]], TOWNS, drop_distance_m=DROP_M)
    lon, lat = ll(0, 0)
    found = point_verdicts(index.point_answer(lat, lon), DROP_M, lambda places: [None] * len(places))
    cable = by_tech(found)["cable"]
    assert cable["verdict"] == "none" and cable["distance_m"] is None
    assert verdict_text(cable, wording("en")) == "Cable (DOCSIS): not available here"
    # With no town to name, the extension sentence simply ends after the extension.
    assert by_tech(found)["fiber"]["verdict"] == "extension_needed"
    assert verdict_text(by_tech(found)["fiber"], wording("en")).endswith("network extension needed")


@pytest.mark.parametrize("x, y, slug, distance, direction", [
    (0, 0, "beta", 400, "N"),            # Beta's south edge is 400 m north; Alpha is 1,003 m west
    (-2000, 0, "alpha", 0, None),        # inside Alpha
    (-1003 + 300, 0, "alpha", 300, "W"),
    (3000, 0, "gamma", 1000, "E"),
])
def test_nearest_town_and_which_way(world, x, y, slug, distance, direction):
    _, gazetteer = world
    near = gazetteer.nearest(*ll(x, y))
    assert (near["town"].slug, near["distance_m"], near["direction"]) == (slug, distance, direction)


def test_nearest_town_sentence():
    near = {"name": "Beta", "name_ru": "Бета", "distance_m": 1400, "direction": "NE"}
    assert nearest_town_text(near, wording("en")) == (
        "This point is outside every town we know; the nearest is Beta, 1,400 m north-east of you")
    russian = nearest_town_text(near, wording("ru"))
    assert re.search(r"ближайший — Бета, 1\u00a0400 м к северо-востоку от вас$", russian)


def test_nested_extents_name_the_smallest():
    outer = town("region", None, rect(-5000, -5000, 5000, 5000))
    inner = town("village", None, rect(-100, -100, 100, 100))
    near = Gazetteer([outer, inner]).nearest(*ll(0, 0))
    assert (near["town"].slug, near["distance_m"]) == ("village", 0)


def test_no_towns_no_nearest_town():
    assert Gazetteer([]).nearest(*ll(0, 0)) is None


def test_boundary_index_says_which_polygon_the_nearest_point_lies_on():
    # Three squares on a metric plane: 0..10 and 100..110 along x, and one 500 m up.
    squares = np.empty(3, dtype=object)
    squares[:] = [shapely.box(0, 0, 10, 10), shapely.box(100, 0, 110, 10), shapely.box(0, 500, 10, 510)]
    edges = BoundaryIndex(squares)
    assert edges.nearest_polygon(40, 5) == (10.0, 5.0, 30.0, 0)    # 30 m from the first, 60 m from the second
    assert edges.nearest_polygon(80, 5) == (100.0, 5.0, 20.0, 1)
    assert edges.nearest_polygon(5, 300) == (5.0, 500.0, 200.0, 2)  # 200 m below the third, 290 m above
