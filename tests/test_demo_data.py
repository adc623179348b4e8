"""The committed demo region in geodata/: reproducible, valid, and holding the cases the portal shows."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[1]
GEODATA = ROOT / "geodata"
SCRIPT = ROOT / "scripts" / "make_demo_data.py"
FILES = ("towns.geojson", "coverage.geojson", "meta.json")
# Pskov oblast with a margin for wireless reaching past the outermost villages.
BBOX = (27.2, 55.5, 31.8, 59.1)
COTTAGE = "lesnoy-cottages"
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> tuple[Path, str]:
    """Run the generator into a fresh directory; return it and the profile table it printed."""
    out = tmp_path_factory.mktemp("geodata")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--profile-table"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return out, result.stdout


def features(name: str) -> list[dict]:
    """Return the features of a committed GeoJSON file."""
    return json.loads((GEODATA / name).read_text(encoding="utf-8"))["features"]


@pytest.fixture(scope="module")
def towns() -> dict[str, dict]:
    """Return committed towns by slug, each with its shapely geometry under 'geom'."""
    return {
        f["properties"]["slug"]: {**f["properties"], "geom": shape(f["geometry"])}
        for f in features("towns.geojson")
    }


@pytest.fixture(scope="module")
def coverage() -> list[dict]:
    """Return committed coverage areas, each with its shapely geometry under 'geom'."""
    return [{**f["properties"], "geom": shape(f["geometry"])} for f in features("coverage.geojson")]


def equal_area(geom, lat: float, lon: float):
    """Return a lon/lat geometry in a Lambert azimuthal equal-area projection centred on lat, lon."""
    proj = Transformer.from_crs(
        "EPSG:4326", f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m", always_xy=True
    )
    return shapely.transform(geom, lambda xy: np.column_stack(proj.transform(xy[:, 0], xy[:, 1])))


def share(town: dict, areas: list[dict], technology: str, status: str = "live") -> float:
    """Return the fraction of a town's extent that areas of a technology and status cover, on the ground."""
    parts = [a["geom"] for a in areas if a["technology"] == technology and a["status"] == status]
    if not parts:
        return 0.0
    extent = equal_area(town["geom"], town["lat"], town["lon"])
    covered = equal_area(shapely.union_all(parts), town["lat"], town["lon"]).intersection(extent)
    return covered.area / extent.area


def touching(town: dict, coverage: list[dict]) -> list[dict]:
    """Return the coverage areas that overlap a town's extent."""
    return [a for a in coverage if a["geom"].intersection(town["geom"]).area > 0]


def nearest_geodesic(lon: float, lat: float, geoms: list) -> float:
    """Return the geodesic distance in metres from a point to the nearest boundary vertex (densified ~5 m)."""
    coords = np.vstack([shapely.get_coordinates(shapely.segmentize(g.boundary, 5e-5)) for g in geoms])
    n = len(coords)
    return float(GEOD.inv(np.full(n, lon), np.full(n, lat), coords[:, 0], coords[:, 1])[2].min())


def test_generator_is_reproducible(regenerated):
    """Check that a fresh run gives the committed files byte for byte."""
    out, _ = regenerated
    for name in FILES:
        assert (out / name).read_bytes() == (GEODATA / name).read_bytes(), name


def test_readme_profile_table_matches_generator(regenerated):
    """Check that the README's profile table is the one the generator prints."""
    _, table = regenerated
    assert table.startswith("| town |")
    assert table in (GEODATA / "README.md").read_text(encoding="utf-8")


def test_meta():
    """Check the region metadata."""
    meta = json.loads((GEODATA / "meta.json").read_text(encoding="utf-8"))
    assert meta["region"] == "Pskov oblast" and meta["region_ru"] == "Псковская область"
    assert meta["timezone"] == "Europe/Moscow" and meta["demo"] is True
    assert date.fromisoformat(meta["as_of"]) == date(2026, 11, 1)
    assert meta["provider"] and meta["provider_ru"] and "GeoNames" in meta["source"]


def test_towns(towns):
    """Check the 56 towns, their slugs and names."""
    assert len(towns) == 56
    for slug, town in towns.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
        assert town["name"] and re.search("[А-Яа-яЁё]", town["name_ru"])
        assert isinstance(town["alt_names"], list) and len(town["alt_names"]) <= 15
        assert town["fictional"] is (town["geonameid"] is None)
    assert [s for s, t in towns.items() if t["fictional"]] == [COTTAGE]
    assert towns["pskov"]["name_ru"] == "Псков"
    assert towns["pechory"]["name_ru"] == "Печоры"
    assert towns["velikiye-luki"]["name_ru"] == "Великие Луки"
    assert towns["nevel"]["name"] == "Nevel’"


def test_geometries_valid_and_in_region(towns, coverage):
    """Check that every geometry is valid, rounded and inside Pskov oblast."""
    geoms = [t["geom"] for t in towns.values()] + [a["geom"] for a in coverage]
    for geom in geoms:
        assert geom.geom_type in ("Polygon", "MultiPolygon")
        assert shapely.is_valid(geom) and not geom.is_empty
        minx, miny, maxx, maxy = geom.bounds
        assert BBOX[0] <= minx and maxx <= BBOX[2] and BBOX[1] <= miny and maxy <= BBOX[3]
        coords = shapely.get_coordinates(geom)
        assert np.array_equal(np.round(coords, 6), coords)
    for town in towns.values():
        assert town["geom"].buffer(0.003).contains(shapely.Point(town["lon"], town["lat"]))


def test_coverage_properties(coverage):
    """Check coverage properties and planned dates."""
    ids = [a["feature_id"] for a in coverage]
    assert len(set(ids)) == len(ids)
    for a in coverage:
        assert a["technology"] in ("fiber", "cable", "dsl", "wireless")
        assert a["status"] in ("live", "planned")
        assert a["max_down_mbps"] > 0 and a["max_up_mbps"] > 0
        if a["status"] == "planned":
            assert date.fromisoformat(a["available_from"]) > date(2026, 11, 1)
        else:
            assert a["available_from"] is None


def test_file_sizes():
    """Check that the files stay small enough to serve and diff."""
    assert (GEODATA / "coverage.geojson").stat().st_size < 1_500_000
    assert (GEODATA / "towns.geojson").stat().st_size < 500_000


def test_pechory_partly_on_fiber(towns, coverage):
    """Check Pechory: about 60-65 % live fiber, DSL everywhere, fiber planned."""
    pechory = towns["pechory"]
    areas = touching(pechory, coverage)
    assert 0.55 <= share(pechory, areas, "fiber") <= 0.70
    assert share(pechory, areas, "dsl") >= 0.99
    planned = [a for a in areas if a["technology"] == "fiber" and a["status"] == "planned"]
    assert planned and share(pechory, planned, "fiber", "planned") > 0.05


def test_cottage_settlement_has_nothing_and_fiber_is_a_kilometre_away(towns, coverage):
    """Check the fictional cottage settlement: no coverage, live fiber about 1 km away."""
    cottage = towns[COTTAGE]
    point = shapely.Point(cottage["lon"], cottage["lat"])
    reaching = [a["feature_id"] for a in coverage
                if a["geom"].intersects(cottage["geom"]) or a["geom"].intersects(point)]
    assert not reaching
    live_fiber = [a["geom"] for a in coverage if a["technology"] == "fiber" and a["status"] == "live"
                  and a["geom"].distance(point) < 0.1]  # degrees: only a cheap pre-filter
    assert live_fiber
    distance = nearest_geodesic(cottage["lon"], cottage["lat"], live_fiber)
    assert 900 <= distance <= 1400
    assert GEOD.inv(cottage["lon"], cottage["lat"], towns["pechory"]["lon"], towns["pechory"]["lat"])[2] < 5000


def test_required_profiles_exist(towns, coverage):
    """Check that the mix holds every case the portal has to show."""
    real = {s: t for s, t in towns.items() if not t["fictional"]}
    found = {slug: touching(town, coverage) for slug, town in real.items()}
    for slug in ("pskov", "velikiye-luki"):
        assert share(real[slug], found[slug], "fiber") >= 0.95
    partly = [s for s, areas in found.items() if 0.05 < share(real[s], areas, "fiber") < 0.95]
    assert len(partly) >= 2
    techs = {s: {a["technology"] for a in areas} for s, areas in found.items()}
    assert any(t == {"dsl"} for t in techs.values()), "a DSL-only town"
    assert any(t == {"wireless"} for t in techs.values()), "a wireless-only town"
    assert any(not t for t in techs.values()), "a town with nothing"
    assert {"fiber", "cable", "dsl", "wireless"} <= {a["technology"] for a in coverage}
    planned_2027 = {s for s, areas in found.items()
                    for a in areas if a["technology"] == "fiber" and a["status"] == "planned"
                    and a["available_from"].startswith("2027-")}
    assert len(planned_2027) >= 3


def test_some_areas_have_holes(coverage):
    """Check that some coverage polygons have an inner ring."""
    holed = [a for a in coverage if any(len(p.interiors) for p in shapely.get_parts(a["geom"]))]
    assert len(holed) >= 2
