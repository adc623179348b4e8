"""Importing GIS files: formats, CRSs, mapping, repair, refusals, dry runs, all-or-nothing.

Every test that writes or reads the database runs on SQLite and on PostgreSQL (``dbp``).
"""
from __future__ import annotations

import json
import warnings
import zipfile
from contextlib import closing

import geopandas as gpd
import pyproj
import pytest
import shapely
from dbtools import database_with_towns
from enginetools import contents, engine_copy

from portal.data import db, imports, layers
from portal.data import statements as sql
from portal.data.import_report import format_diff, format_report
from portal.data.layers import Area, Town

# Two towns in UTM zone 36N (30°E-36°E), so a Shapefile in EPSG:32636 is natural for them.
ALPHA = shapely.box(30.40, 57.40, 30.50, 57.45)
BETA = shapely.box(30.70, 57.60, 30.80, 57.65)
TOWNS = [
    Town("alpha", "Alpha", "Альфа", 12000, 57.425, 30.45, ALPHA, ("Alfa",)),
    Town("beta", "Beta", "Бета", 3000, 57.625, 30.75, BETA, ()),
]
TO_UTM = pyproj.Transformer.from_crs(4326, 32636, always_xy=True)
TO_MERC = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)


def utm_square(lon: float, lat: float, size_m: float = 1000.0) -> shapely.Polygon:
    """Return a square of ``size_m`` metres in EPSG:32636 with its south-west corner at lon/lat."""
    x, y = TO_UTM.transform(lon, lat)
    return shapely.box(x, y, x + size_m, y + size_m)


def coverage(rows: list[dict], geoms: list, crs) -> gpd.GeoDataFrame:
    """Return a coverage frame with our column names."""
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)


def live_rows(n: int = 2, **extra) -> list[dict]:
    """Return n rows of valid attributes."""
    return [{"feature_id": f"f{i}", "technology": "fiber", "status": "live",
             "max_down_mbps": 500.0, "max_up_mbps": 200.0, **extra} for i in range(n)]



def read_conn(path):
    """Return a read-only connection that closes at the end of a with block."""
    return closing(db.connect_readonly(path))


@pytest.fixture(scope="module")
def two_towns(tmp_path_factory):
    """The database with the two towns live, made once: the template of ``dbp``."""
    return database_with_towns(tmp_path_factory.mktemp("two-towns") / "portal.sqlite", TOWNS, source="towns.test")


@pytest.fixture
def dbp(engine, two_towns, tmp_path, request):
    """Return a fresh database with the two towns live, on the engine under test: a path or a URL."""
    return engine_copy(engine, two_towns, tmp_path, request)


def zip_shapefile(frame: gpd.GeoDataFrame, folder, name: str = "cov", with_prj: bool = True):
    """Write a Shapefile and zip its parts; return the .zip path."""
    shp_dir = folder / f"{name}_shp"
    shp_dir.mkdir()
    with warnings.catch_warnings():  # GDAL warns that it cuts field names to 10 characters
        warnings.simplefilter("ignore")
        frame.to_file(shp_dir / f"{name}.shp")
    if not with_prj:
        (shp_dir / f"{name}.prj").unlink()
    target = folder / f"{name}.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in sorted(shp_dir.iterdir()):
            zf.write(part, part.name)
    return target


def test_geopackage_in_web_mercator(dbp, tmp_path):
    geoms = [shapely.box(30.41, 57.41, 30.43, 57.42), shapely.box(30.71, 57.61, 30.72, 57.62)]
    merc = [shapely.Polygon(zip(*TO_MERC.transform(*g.exterior.xy))) for g in geoms]
    rows = live_rows(2)
    rows[1].update(technology="cable", status="planned", available_from="2026-09-01")
    path = tmp_path / "cov.gpkg"
    coverage(rows, merc, 3857).to_file(path, layer="coverage", driver="GPKG")
    result = imports.import_layer(dbp, "coverage", path, author="anna")
    assert result.report["crs"] == "EPSG:3857"
    assert result.report["counts"] == {"cable": {"planned": 1}, "fiber": {"live": 1}}
    with read_conn(dbp) as conn:
        areas = layers.load_coverage(conn)
        info = layers.layer_info(conn, result.layer_id)
    assert [a.feature_id for a in areas] == ["f0", "f1"]
    assert areas[1].available_from == "2026-09-01"
    assert shapely.bounds(areas[0].geometry) == pytest.approx([30.41, 57.41, 30.43, 57.42], abs=1e-9)
    assert info["author"] == "anna" and info["source"] == "cov.gpkg" and len(info["checksum"]) == 64


def test_zipped_shapefile_in_utm_with_truncated_columns_and_mapping(dbp, tmp_path):
    frame = coverage(
        [{"CELL_ID": "c1", "TECH": "FTTH", "DOWN_MBPS_MAX": 1000, "UP_MBPS_MAX": 500},
         {"CELL_ID": "c2", "TECH": "docsis", "DOWN_MBPS_MAX": 300, "UP_MBPS_MAX": 30}],
        [utm_square(30.42, 57.41), utm_square(30.45, 57.42, 500)], 32636)
    archive = zip_shapefile(frame, tmp_path)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({
        "columns": {"feature_id": "CELL_ID", "technology": "TECH",
                    "max_down_mbps": "DOWN_MBPS_", "max_up_mbps": "UP_MBPS_MA"},
        "values": {"technology": {"FTTH": "fiber", "DOCSIS": "cable"}},
        "defaults": {"status": "live"},
    }))
    dry = imports.import_layer(dbp, "coverage", archive, mapping=mapping, dry_run=True, author="t")
    assert dry.report["crs"] == "EPSG:32636"
    assert dry.report["counts"] == {"cable": {"live": 1}, "fiber": {"live": 1}}
    # A 1 km square drawn in UTM covers 1.000 km² (UTM's scale error here is ~0.02 %).
    assert dry.diff["km2_after"]["fiber"]["live"] == pytest.approx(1.000, abs=0.001)
    assert dry.diff["km2_after"]["cable"]["live"] == pytest.approx(0.250, abs=0.0005)
    assert dry.diff["km2_before"] == {}
    assert sorted(dry.diff["added"]) == ["c1", "c2"]
    result = imports.import_layer(dbp, "coverage", archive, mapping=mapping, author="t")
    with read_conn(dbp) as conn:
        areas = {a.feature_id: a for a in layers.load_coverage(conn)}
    assert areas["c1"].technology == "fiber" and areas["c1"].max_down_mbps == 1000
    assert areas["c2"].technology == "cable" and areas["c2"].max_up_mbps == 30
    assert result.layer_id is not None


def test_example_mapping_reads_a_provider_style_file(tmp_path):
    frame = coverage(
        [{"CELL_ID": 7, "TECH": "GPON", "STATE": "in service", "DOWN_MBPS": 1000, "UP_MBPS": 1000,
          "AVAIL_FROM": None},
         {"CELL_ID": 8, "TECH": "LTE", "STATE": "construction", "DOWN_MBPS": 50, "UP_MBPS": 10,
          "AVAIL_FROM": "2026-03-01"}],
        [utm_square(30.42, 57.41), utm_square(30.46, 57.41)], 32636)
    archive = zip_shapefile(frame, tmp_path)
    read = imports.read_layer(archive, "coverage", layers_root() / "geodata" / "mapping.example.json")
    assert read.report["refused"] == []
    assert [(a.feature_id, a.technology, a.status, a.available_from) for a in read.features] == [
        ("7", "fiber", "live", None), ("8", "wireless", "planned", "2026-03-01")]


def layers_root():
    """Return the checkout's root folder."""
    from portal.config import ROOT
    return ROOT


def test_kml(dbp, tmp_path):
    path = tmp_path / "coverage.kml"
    coverage(live_rows(1), [shapely.box(30.42, 57.41, 30.44, 57.42)], 4326).to_file(path, driver="KML")
    result = imports.import_layer(dbp, "coverage", path, author="t")
    with read_conn(dbp) as conn:
        (area,) = layers.load_coverage(conn)
    assert result.report["driver"] in ("KML", "LIBKML")
    assert area.technology == "fiber" and area.max_down_mbps == 500
    assert not shapely.has_z(area.geometry)


def test_bowtie_is_repaired_and_reported(dbp, tmp_path):
    bowtie = shapely.Polygon([(30.41, 57.41), (30.43, 57.43), (30.43, 57.41), (30.41, 57.43)])
    path = tmp_path / "bowtie.geojson"
    coverage(live_rows(1), [bowtie], 4326).to_file(path)
    result = imports.import_layer(dbp, "coverage", path, author="t")
    (repaired,) = result.report["repaired"]
    assert repaired["id"] == "#1 (f0)" and "Self-intersection" in repaired["problem"]
    assert "Repaired with make_valid (1)" in format_report(result.report)
    with read_conn(dbp) as conn:
        (area,) = layers.load_coverage(conn)
    assert area.geometry.is_valid and area.geometry.geom_type == "MultiPolygon"
    assert area.geometry.area == pytest.approx(0.0002, rel=1e-6)  # two triangles, not zero


@pytest.mark.parametrize("case", ["truncated", "csv", "no_technology", "bad_mapping_column"])
def test_unreadable_files_leave_the_database_unchanged(dbp, tmp_path, case):
    path = tmp_path / "cov.geojson"
    coverage(live_rows(3), [shapely.box(30.41, 57.41, 30.42, 57.42)] * 3, 4326).to_file(path)
    mapping, expect = None, None
    if case == "truncated":
        text = path.read_text()
        path.write_text(text[: len(text) // 2])
        expect = "cannot be read"
    elif case == "csv":
        path = tmp_path / "cov.csv"
        path.write_text("feature_id,technology,status\nf1,fiber,live\n")
        expect = "has no geometry"
    elif case == "no_technology":
        coverage([{"status": "live"}], [shapely.box(30.41, 57.41, 30.42, 57.42)], 4326).to_file(path)
        expect = 'has no "technology" column'
    else:
        mapping = {"columns": {"technology": "TECHNO"}}
        expect = 'column "TECHNO", which the file does not have'
    before = contents(dbp)
    with pytest.raises(imports.UnreadableFile) as err:
        imports.import_layer(dbp, "coverage", path, mapping=mapping, author="t")
    assert path.name in str(err.value) and expect in str(err.value)
    assert contents(dbp) == before


def test_unknown_values_refuse_the_whole_file_listing_every_feature(dbp, tmp_path):
    rows = live_rows(5)
    rows[1]["technology"] = "satellite"
    rows[3]["technology"] = "FTTX"
    rows[4]["status"] = "maybe"
    path = tmp_path / "cov.geojson"
    coverage(rows, [shapely.box(30.41 + i / 100, 57.41, 30.415 + i / 100, 57.42) for i in range(5)],
             4326).to_file(path)
    before = contents(dbp)
    with pytest.raises(imports.FileRefused) as err:
        imports.import_layer(dbp, "coverage", path, author="t")
    refused = err.value.result.report["refused"]
    assert [r["id"] for r in refused] == ["#2 (f1)", "#4 (f3)", "#5 (f4)"]
    assert "'satellite'" in refused[0]["reason"] and "'FTTX'" in refused[1]["reason"]
    assert "'maybe'" in refused[2]["reason"]
    for label in ("#2 (f1)", "#4 (f3)", "#5 (f4)", "--skip-invalid"):
        assert label in str(err.value)
    assert contents(dbp) == before
    result = imports.import_layer(dbp, "coverage", path, author="t", skip_invalid=True)
    with read_conn(dbp) as conn:
        assert [a.feature_id for a in layers.load_coverage(conn)] == ["f0", "f2"]
    assert len(result.report["refused"]) == 3


def test_every_refusal_reason_is_reported(dbp, tmp_path):
    rows = live_rows(9)
    geoms = [shapely.box(30.41, 57.41, 30.42, 57.42)] * 9
    rows[0]["max_down_mbps"] = "fast"
    rows[1]["status"], rows[1]["available_from"] = "planned", "next spring"
    geoms[2] = None
    geoms[3] = shapely.Point(30.41, 57.41)
    geoms[4] = shapely.box(10.0, 10.0, 10.1, 10.1)  # far outside the towns: a CRS mix-up
    rows[5]["feature_id"] = "f6"  # duplicates the id of row 7
    rows[7]["status"], rows[7]["available_from"] = "planned", "2026-05-01"
    rows[8]["status"] = "planned"  # no date: kept, with a note
    path = tmp_path / "cov.geojson"
    coverage(rows, geoms, 4326).to_file(path)
    with pytest.raises(imports.FileRefused) as err:
        imports.import_layer(dbp, "coverage", path, author="t")
    report = err.value.result.report
    reasons = {r["id"]: r["reason"] for r in report["refused"]}
    assert "'fast' is not a number" in reasons["#1 (f0)"]
    assert "'next spring' is not an ISO date" in reasons["#2 (f1)"]
    assert reasons["#3 (f2)"] == "no geometry"
    assert reasons["#4 (f3)"].startswith("Point geometry")
    assert "outside the region" in reasons["#5 (f4)"] and report["outside_region"] == ["#5 (f4)"]
    assert "duplicate feature_id 'f6'" in reasons["#7 (f6)"]
    assert len(reasons) == 6
    assert any("planned without an available_from" in n for n in report["notes"])


def test_dry_run_writes_nothing_and_reports_the_difference(dbp, tmp_path):
    first = tmp_path / "v1.geojson"
    coverage([{"feature_id": "a", "technology": "dsl", "status": "live"},
              {"feature_id": "b", "technology": "fiber", "status": "live"}],
             [ALPHA, shapely.box(30.70, 57.60, 30.75, 57.65)], 4326).to_file(first)
    imports.import_layer(dbp, "coverage", first, author="t")
    second = tmp_path / "v2.geojson"
    coverage([{"feature_id": "a", "technology": "dsl", "status": "live", "max_down_mbps": 20},
              {"feature_id": "c", "technology": "fiber", "status": "live"}],
             [ALPHA, ALPHA], 4326).to_file(second)
    before = contents(dbp)
    result = imports.import_layer(dbp, "coverage", second, author="t", dry_run=True)
    assert contents(dbp) == before and result.layer_id is None
    diff = result.diff
    assert diff["added"] == ["c"] and diff["removed"] == ["b"]
    assert diff["changed"] == [{"id": "a", "fields": ["max_down_mbps"]}]
    towns = {t["slug"]: t for t in diff["towns_changed"]}
    assert towns["alpha"]["best"] == ["dsl", "fiber"] and towns["alpha"]["fiber_share"] == [0.0, 1.0]
    assert towns["beta"]["best"] == ["fiber", None] and towns["beta"]["fiber_share"] == [0.5, 0.0]
    text = format_diff(diff, "coverage")
    assert "Alpha (alpha): best dsl -> fiber, fiber 0% -> 100%" in text


def test_areas_without_ids_are_matched_by_geometry(dbp, tmp_path):
    path = tmp_path / "noid.geojson"
    coverage([{"technology": "fiber", "status": "live"}, {"technology": "dsl", "status": "live"}],
             [ALPHA, BETA], 4326).to_file(path)
    imports.import_layer(dbp, "coverage", path, author="t")
    coverage([{"technology": "fiber", "status": "live"}, {"technology": "cable", "status": "live"}],
             [ALPHA, shapely.box(30.70, 57.60, 30.71, 57.61)], 4326).to_file(path)
    diff = imports.import_layer(dbp, "coverage", path, author="t", dry_run=True).diff
    assert diff["unchanged"] == 1 and len(diff["added"]) == 1 and len(diff["removed"]) == 1
    assert diff["removed"][0].startswith("dsl/live area at 57.625")


def test_file_without_crs(dbp, tmp_path):
    frame = coverage(live_rows(1), [shapely.box(30.41, 57.41, 30.42, 57.42)], 4326)
    degrees = zip_shapefile(frame, tmp_path, "deg", with_prj=False)
    read = imports.read_layer(degrees, "coverage")
    assert read.report["crs"] == "EPSG:4326" and "no CRS" in read.report["warnings"][0]
    metres = zip_shapefile(frame.to_crs(32636), tmp_path, "utm", with_prj=False)
    with pytest.raises(imports.UnreadableFile, match="declares no coordinate reference system"):
        imports.read_layer(metres, "coverage")
    read = imports.read_layer(metres, "coverage", {"assume_crs": "EPSG:32636"})
    assert shapely.bounds(read.features[0].geometry) == pytest.approx([30.41, 57.41, 30.42, 57.42])


def test_bad_mapping_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"columns": {"speed": "SPD"}}')
    with pytest.raises(imports.BadMapping, match="not fields of a coverage layer"):
        imports.load_mapping(path, "coverage")
    path.write_text("{not json")
    with pytest.raises(imports.BadMapping, match="not valid JSON"):
        imports.load_mapping(path, "coverage")


def test_towns_import(dbp, tmp_path):
    with closing(sql.connect(dbp)) as conn:
        conn.execute("INSERT INTO incidents (id, title, kind, started_at, created_at, author)"
                     " VALUES (1, 'Cut', 'outage', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', 't')")
        conn.execute("INSERT INTO incident_towns VALUES (1, 'beta')")
    path = tmp_path / "towns.gpkg"
    gpd.GeoDataFrame(
        {"name": ["Alpha", "Velikiye Luki"], "name_ru": ["Альфа", "Великие Луки"],
         "population": [12500, 98000], "alt_names": ['["Alfa"]', "Luki; V. Luki"],
         "fictional": [True, False]},
        geometry=[ALPHA, shapely.box(30.50, 56.30, 30.60, 56.36)], crs=4326,
    ).to_crs(3857).to_file(path, driver="GPKG")
    dry = imports.import_layer(dbp, "towns", path, author="t", dry_run=True)
    assert dry.diff["added"] == ["velikiye-luki"] and dry.diff["removed"] == ["beta"]
    assert dry.diff["changed"][0]["id"] == "alpha" and "population" in dry.diff["changed"][0]["fields"]
    assert dry.report["removed_towns_in_incidents"] == [{"slug": "beta", "incident": 1, "active": True}]
    assert any("WARNING: town 'beta'" in n for n in dry.report["notes"])
    imports.import_layer(dbp, "towns", path, author="t", replace_all=True)
    with read_conn(dbp) as conn:
        towns = {t.slug: t for t in layers.load_towns(conn)}
    luki = towns["velikiye-luki"]
    assert luki.alt_names == ("Luki", "V. Luki") and luki.population == 98000
    assert luki.geometry.contains(shapely.Point(luki.lon, luki.lat))
    assert towns["alpha"].alt_names == ("Alfa",)


def test_crash_while_writing_keeps_the_previous_layer(dbp):
    good = Area("fiber", "live", ALPHA, feature_id="ok")
    with db.writing(dbp) as conn:
        layers.store_layer(conn, "coverage", [good], source="v1", author="t")
    before = contents(dbp)
    broken = Area("fiber", "live", "not a geometry", feature_id="bad")  # fails to serialise
    with pytest.raises(TypeError):
        imports.write_layer(dbp, "coverage", [good] * 1000 + [broken], source="v2", author="t")
    assert contents(dbp) == before


def test_dry_run_on_a_missing_database_creates_nothing(tmp_path):
    path = tmp_path / "cov.geojson"
    coverage(live_rows(1), [ALPHA], 4326).to_file(path)
    target = tmp_path / "new" / "portal.sqlite"
    result = imports.import_layer(target, "coverage", path, author="t", dry_run=True)
    assert result.diff["added"] == ["f0"] and not target.exists()
    with pytest.raises(imports.ImportFailure, match="does not exist"):
        imports.import_layer(target, "coverage", path, author="t")
    assert not target.exists()
    imports.import_layer(target, "coverage", path, author="t", create=True)
    with read_conn(target) as conn:
        assert len(layers.load_coverage(conn)) == 1


def test_read_layer_needs_no_database(tmp_path):
    path = tmp_path / "towns.geojson"
    gpd.GeoDataFrame({"slug": ["x"], "name": ["X"], "lat": [57.42], "lon": [30.45],
                      "alt_names": ["A, B"]}, geometry=[ALPHA], crs=4326).to_file(path)
    read = imports.read_layer(path, "towns")
    (town,) = read.features
    assert (town.slug, town.lat, town.lon, town.alt_names) == ("x", 57.42, 30.45, ("A", "B"))
    assert read.report["region"] == [30.4, 57.4, 30.5, 57.45]


def test_as_of_is_kept(dbp, tmp_path):
    path = tmp_path / "cov.geojson"
    coverage(live_rows(1), [ALPHA], 4326).to_file(path)
    result = imports.import_layer(dbp, "coverage", path, author="t", as_of="2025-06-30")
    with read_conn(dbp) as conn:
        assert layers.layer_info(conn, result.layer_id)["as_of"] == "2025-06-30"


def test_tiled_union_area_equals_the_plain_union():
    import numpy as np

    from portal.data.import_report import union_area_m2
    geoms = np.array([shapely.box(-3000, -3000, 9000, 4000), shapely.box(1000, 1000, 12000, 11000),
                      shapely.Point(100, 100).buffer(2500), shapely.box(20000, 0, 21000, 1000)])
    expected = shapely.union_all(geoms).area
    assert union_area_m2(geoms, tile_m=5000.0) == pytest.approx(expected, rel=1e-12)
    assert union_area_m2(np.array([], dtype=object)) == 0.0
