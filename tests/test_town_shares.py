"""Town shares are measured when a layer is stored, kept per pair of layers, and read back by workers.

Shapes are drawn in metres on an azimuthal equidistant plane centred at (lon 30.0, lat
57.5), so a 10 km x 10 km town with fiber over its west half has a fiber share of 0.5 on
paper, and one with fiber over its south-west quarter 0.25.

Every test runs on SQLite and on PostgreSQL (``dbp``), but the one about a database made before
the shares were stored, which only an SQLite portal can be.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import geopandas as gpd
import pyproj
import pytest
import shapely
from dbtools import database_with_towns
from enginetools import engine_copy

from portal.config import ROOT
from portal.coverage import snapshot as state
from portal.coverage.index import ShareMeter
from portal.data import db, imports, layers
from portal.data.layers import Town

LON0, LAT0 = 30.0, 57.5
AEQD = pyproj.Transformer.from_crs(
    "EPSG:4326", f"+proj=aeqd +lat_0={LAT0} +lon_0={LON0} +datum=WGS84 +units=m", always_xy=True
)


def rect(x0, y0, x1, y1) -> shapely.Polygon:
    """Return a lon/lat polygon whose corners sit at metric positions."""
    return shapely.Polygon([AEQD.transform(x, y, direction="INVERSE") for x, y in
                            ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])


def town(slug: str, extent: shapely.Polygon) -> Town:
    """Return a town record for an extent."""
    c = extent.centroid
    return Town(slug=slug, name=slug.title(), name_ru=None, population=1000, lat=c.y, lon=c.x,
                geometry=extent)


SQUARE = town("square", rect(-5000, -5000, 5000, 5000))  # 10 km x 10 km
FAR = town("far", rect(20000, -1000, 22000, 1000))  # nothing covers it
WEST_HALF = rect(-5000, -5000, 0, 5000)
SOUTH_WEST_QUARTER = rect(-5000, -5000, 0, 0)


def coverage_file(path, *areas) -> str:
    """Write a coverage GeoJSON of (technology, status, polygon) areas; return its path."""
    rows = [{"feature_id": f"f{i}", "technology": t, "status": s, "max_down_mbps": 100.0,
             "max_up_mbps": 10.0, "available_from": "2027-01-01" if s == "planned" else None}
            for i, (t, s, _) in enumerate(areas)]
    gpd.GeoDataFrame(rows, geometry=[g for _, _, g in areas], crs=4326).to_file(path)
    return str(path)


def towns_file(path, *towns: Town) -> str:
    """Write a towns GeoJSON; return its path."""
    rows = [{"slug": t.slug, "name": t.name, "population": t.population} for t in towns]
    gpd.GeoDataFrame(rows, geometry=[t.geometry for t in towns], crs=4326).to_file(path)
    return str(path)


def import_coverage(dbp, tmp_path, name, *areas) -> int:
    """Import a coverage layer of the given areas; return its id."""
    return imports.import_layer(dbp, "coverage", coverage_file(tmp_path / f"{name}.geojson", *areas),
                                author="t").layer_id


def stored(dbp, towns_id, coverage_id):
    """Return the stored share entries of a pair of layers (None: never measured)."""
    with closing(db.connect_readonly(dbp)) as conn:
        return layers.load_town_shares(conn, towns_id, coverage_id)


def served(dbp) -> dict:
    """Return every town's summary as a worker serves it (a fresh snapshot of the live layers)."""
    with closing(db.connect_readonly(dbp)) as conn:
        return state.snapshot(conn, str(dbp), 150).coverage.all_town_summaries()


def served_as_stored(dbp, monkeypatch) -> dict:
    """Return ``served(dbp)``, failing if the worker measures any share: they must have been stored."""
    def refuse(self, town_i):
        raise AssertionError("a worker measured town shares")

    with monkeypatch.context() as patch:
        patch.setattr(ShareMeter, "entries", refuse)
        return served(dbp)


@pytest.fixture(scope="module")
def square_and_far(tmp_path_factory):
    """The database whose live towns (layer 1) are the square and the far town: ``dbp``'s template."""
    return database_with_towns(tmp_path_factory.mktemp("shares") / "portal.sqlite", [SQUARE, FAR])


@pytest.fixture
def dbp(engine, square_and_far, tmp_path, request):
    """Return a fresh database whose live towns are the square and the far town, on the engine under test."""
    return engine_copy(engine, square_and_far, tmp_path, request)


def shares_of(summary: dict) -> dict:
    """Return {(technology, status): share} of a town summary."""
    return {(e["technology"], e["status"]): e["share"] for e in summary["technologies"]}


def test_shares_are_measured_at_import_stored_and_read_back(dbp, tmp_path, monkeypatch):
    layer = import_coverage(dbp, tmp_path, "v1", ("fiber", "live", WEST_HALF),
                            ("cable", "planned", SQUARE.geometry))
    entries = stored(dbp, 1, layer)
    assert set(entries) == {"square"}  # the far town has no coverage, hence no entries
    by = {(e["technology"], e["status"]): e for e in entries["square"]}
    assert by["fiber", "live"]["share"] == pytest.approx(0.5, abs=1e-4)
    assert by["cable", "planned"]["share"] == pytest.approx(1.0, abs=1e-4)
    assert by["cable", "planned"]["available_from"] == "2027-01-01"
    assert by["fiber", "live"]["max_down_mbps"] == 100.0

    summaries = served_as_stored(dbp, monkeypatch)
    square = summaries["square"]
    assert shares_of(square) == {("fiber", "live"): 0.5, ("cable", "planned"): 1.0}
    assert (square["has_fiber"], square["best"], square["fiber_share"]) == (True, "fiber", 0.5)
    assert summaries["far"] == {"has_fiber": False, "best": None, "fiber_share": 0.0, "technologies": []}


def test_stored_shares_are_what_the_index_measures_itself(dbp, tmp_path):
    layer = import_coverage(dbp, tmp_path, "v1", ("fiber", "live", WEST_HALF),
                            ("dsl", "live", SOUTH_WEST_QUARTER), ("cable", "planned", SQUARE.geometry))
    with closing(db.connect_readonly(dbp)) as conn:
        areas, towns = layers.load_coverage(conn), layers.load_towns(conn)
    from portal.coverage.index import CoverageIndex

    measured = CoverageIndex(areas, towns).all_town_summaries()  # given no shares: measures them
    from_store = CoverageIndex(areas, towns, shares=stored(dbp, 1, layer)).all_town_summaries()
    assert from_store == measured
    assert shares_of(measured["square"])[("dsl", "live")] == 0.25


def test_rollback_serves_the_shares_of_the_layer_it_activates(dbp, tmp_path, monkeypatch):
    half = import_coverage(dbp, tmp_path, "v1", ("fiber", "live", WEST_HALF))
    import_coverage(dbp, tmp_path, "v2", ("fiber", "live", SOUTH_WEST_QUARTER))
    assert served_as_stored(dbp, monkeypatch)["square"]["fiber_share"] == 0.25
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "layers.py"), "rollback", str(half),
                           "--db", str(dbp)], capture_output=True, text=True,
                          env={**os.environ, "PORTAL_AUTHOR": "olga"})
    assert proc.returncode == 0, proc.stderr
    assert served_as_stored(dbp, monkeypatch)["square"]["fiber_share"] == 0.5


def test_a_towns_import_and_a_rollback_to_a_pair_never_measured(dbp, tmp_path, monkeypatch):
    import_coverage(dbp, tmp_path, "v1", ("fiber", "live", WEST_HALF))  # layer 2
    # New towns: the square shrunk to its west half, which the fiber covers whole.
    west = town("square", WEST_HALF)
    towns_layer = imports.import_layer(dbp, "towns", towns_file(tmp_path / "t.geojson", west, FAR),
                                       author="t").layer_id
    assert stored(dbp, towns_layer, 2)["square"][0]["share"] == pytest.approx(1.0, abs=1e-4)
    quarter = import_coverage(dbp, tmp_path, "v2", ("fiber", "live", SOUTH_WEST_QUARTER))
    # A quarter of the square is half of its west half.
    assert served_as_stored(dbp, monkeypatch)["square"]["fiber_share"] == 0.5
    # The first towns layer never was live with this coverage: the rollback measures that pair.
    assert stored(dbp, 1, quarter) is None
    with db.writing(dbp) as conn:
        layers.activate_layer(conn, 1)
    assert stored(dbp, 1, quarter)["square"][0]["share"] == pytest.approx(0.25, abs=1e-4)
    assert served_as_stored(dbp, monkeypatch)["square"]["fiber_share"] == 0.25


# A portal from before the shares were stored is an SQLite file: PostgreSQL portals are made by
# this version's migrations (there are none to apply there yet), so they always have the tables.
@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_database_from_before_stored_shares_is_measured_on_the_fly_until_the_next_import(dbp, tmp_path):
    import_coverage(dbp, tmp_path, "v1", ("fiber", "live", WEST_HALF))
    with closing(sqlite3.connect(dbp)) as conn, conn:
        conn.execute("DROP TABLE town_shares")
        conn.execute("DROP TABLE town_share_layers")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_town_shares'")
    assert served(dbp)["square"]["fiber_share"] == 0.5  # measured by the index
    with db.writing(dbp) as conn:  # a rollback there cannot store them, and does not fail
        layers.activate_layer(conn, 2)
    layer = import_coverage(dbp, tmp_path, "v2", ("fiber", "live", SOUTH_WEST_QUARTER))
    assert stored(dbp, 1, layer)["square"][0]["share"] == pytest.approx(0.25, abs=1e-4)
