"""The staff scripts: import, history and rollback, export, backup, interruption."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from dbtools import database_with_towns, dump
from enginetools import contents, engine_copy, missing_database
from test_imports import ALPHA, BETA, coverage, live_rows, two_towns  # noqa: F401 -- two_towns: a fixture

from portal.config import ROOT
from portal.data import db, imports, layers
from portal.data import statements as sql

SCRIPTS = ROOT / "scripts"


@pytest.fixture
def dbp(tmp_path):
    """Return a fresh database with the two towns live."""
    from test_imports import TOWNS

    return database_with_towns(tmp_path / "portal.sqlite", TOWNS, source="towns.test")


@pytest.fixture
def target(engine, tmp_path, request):
    """The two-towns database on the engine under test: an SQLite path or a postgresql:// URL."""
    return engine_copy(engine, request.getfixturevalue("two_towns"), tmp_path, request)


def run(script: str, *args, cwd=None, check=None) -> subprocess.CompletedProcess:
    """Run a script as staff do (from another folder, to prove it finds the package)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *map(str, args)],
        capture_output=True, text=True, cwd=cwd or "/", env={**os.environ, "PORTAL_AUTHOR": "olga"},
    )
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def write_coverage(path: Path, technology: str = "fiber", geoms=None) -> Path:
    """Write a small valid coverage GeoJSON."""
    geoms = geoms or [ALPHA, BETA]
    coverage(live_rows(len(geoms), technology=technology), geoms, 4326).to_file(path)
    return path


def live_coverage(path) -> list:
    """Return the live coverage areas."""
    with closing(db.connect_readonly(path)) as conn:
        return layers.load_coverage(conn)


@pytest.mark.parametrize("script", ["import_coverage.py", "import_towns.py", "layers.py",
                                    "export_layers.py", "backup.py"])
def test_help_ends_with_an_example(script):
    out = [line.strip() for line in run(script, "--help", check=0).stdout.rstrip().splitlines()]
    examples = out[out.index("Example:") + 1:]  # one command to copy, or one per engine
    assert examples and all(line.startswith(f"python scripts/{script}") for line in examples)


def test_import_dry_run_then_import_then_rollback(target, tmp_path):
    first = write_coverage(tmp_path / "v1.geojson", "dsl")
    run("import_coverage.py", first, "--db", target, check=0)
    second = write_coverage(tmp_path / "v2.geojson", "fiber")
    before = contents(target)
    dry = run("import_coverage.py", second, "--db", target, "--dry-run", check=0)
    assert contents(target) == before
    assert "2 changed" in dry.stdout and "Alpha (alpha): best dsl -> fiber" in dry.stdout
    assert "Dry run: nothing was written." in dry.stdout
    done = run("import_coverage.py", second, "--db", target, check=0)
    assert "as layer 3 (replaces layer 2: 2 kept, 0 added, 0 removed)" in done.stdout
    assert {a.technology for a in live_coverage(target)} == {"fiber"}

    listing = run("layers.py", "list", "--db", target, check=0).stdout
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert "v2.geojson  LIVE" in rows["3"] and "olga" in rows["3"] and rows["3"].split()[5] == "2"
    assert rows["2"].rstrip().endswith("v1.geojson")
    assert "towns.test  LIVE" in rows["1"]

    out = run("layers.py", "rollback", "2", "--db", target, check=0).stdout
    assert "Layer 2" in out and "live again" in out
    assert {a.technology for a in live_coverage(target)} == {"dsl"}
    with closing(sql.connect(target)) as conn:
        (action, author, subject), = [tuple(r) for r in conn.execute(
            "SELECT action, author, subject FROM audit WHERE action = 'layer.rollback'").fetchall()]
    assert (action, author, subject) == ("layer.rollback", "olga", "layer 2")
    show = run("layers.py", "show", "2", "--db", target, check=0).stdout
    assert "live: yes" in show and "layer.rollback by olga" in show and '"features_read": 2' in show


def test_rollback_refusals(target):
    before = contents(target)
    missing = run("layers.py", "rollback", "42", "--db", target, check=2)
    assert "no layer 42" in missing.stderr and "1" in missing.stderr
    live = run("layers.py", "rollback", "1", "--db", target, check=2)
    assert "already the live towns layer" in live.stderr
    assert "Traceback" not in missing.stderr + live.stderr
    assert contents(target) == before


def test_refused_file_exits_non_zero_with_every_feature_listed(target, tmp_path):
    path = tmp_path / "bad.geojson"
    rows = live_rows(3)
    rows[0]["technology"], rows[2]["technology"] = "SAT", "5G"
    coverage(rows, [ALPHA, BETA, ALPHA], 4326).to_file(path)
    before = contents(target)
    proc = run("import_coverage.py", path, "--db", target, check=2)
    assert "#1 (f0): unknown technology 'SAT'" in proc.stderr
    assert "#3 (f2): unknown technology '5G'" in proc.stderr
    assert "Traceback" not in proc.stderr and contents(target) == before
    run("import_coverage.py", path, "--db", target, "--skip-invalid", check=0)
    assert [a.feature_id for a in live_coverage(target)] == ["f1"]


def test_unreadable_file_message(target, tmp_path):
    path = write_coverage(tmp_path / "cut.geojson")
    path.write_bytes(path.read_bytes()[:200])
    before = contents(target)
    proc = run("import_coverage.py", path, "--db", target, check=2)
    assert proc.stderr.startswith("Error: cut.geojson cannot be read")
    assert len(proc.stderr.strip().splitlines()) == 1 and contents(target) == before


def _tables(target) -> int:
    """Return how many tables a database holds (a missing file holds none)."""
    if "://" not in str(target):
        return len(contents(target)) if Path(target).exists() else 0
    with closing(sql.connect(target)) as conn:
        return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]


def test_import_creates_a_missing_database_only_when_asked(engine, tmp_path, request):
    # A file not there yet, or an empty PostgreSQL database (made by its administrator).
    target = missing_database(engine, tmp_path / "instance", request)
    refused = run("import_coverage.py", write_coverage(tmp_path / "c.geojson"), "--db", target, check=2)
    said = f"--db {target}: no such file" if engine == "sqlite" else "is not a portal database"
    assert said in refused.stderr, refused.stderr
    assert not (tmp_path / "instance").exists() and _tables(target) == 0
    dry = run("import_coverage.py", tmp_path / "c.geojson", "--db", target, "--create", "--dry-run", check=0)
    assert "Dry run: nothing was written." in dry.stdout
    assert not (tmp_path / "instance").exists() and _tables(target) == 0
    run("import_coverage.py", tmp_path / "c.geojson", "--db", target, "--create", check=0)
    assert len(live_coverage(target)) == 2


@pytest.mark.parametrize("engine", ["postgresql"])
def test_create_refuses_a_postgresql_database_holding_other_tables(engine, tmp_path, request):
    target = missing_database(engine, tmp_path, request)
    with closing(sql.connect(target)) as conn:
        conn.execute("CREATE TABLE invoices (id bigint)")
    refused = run("import_coverage.py", write_coverage(tmp_path / "c.geojson"), "--db", target, "--create",
                  check=2)
    assert "not the portal's (invoices)" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert _tables(target) == 1


def test_towns_script(target, tmp_path):
    path = tmp_path / "towns.geojson"
    gpd.GeoDataFrame({"name": ["Gamma Town"], "population": [500]},
                     geometry=[shapely.box(30.9, 57.0, 31.0, 57.1)], crs=4326).to_file(path)
    out = run("import_towns.py", path, "--db", target, "--dry-run", check=0).stdout
    assert "gamma-town" in out and "1 added, 2 removed" in out
    run("import_towns.py", path, "--db", target, "--replace-all", check=0)
    with closing(db.connect_readonly(target)) as conn:
        assert [t.slug for t in layers.load_towns(conn)] == ["gamma-town"]


def test_export_round_trip(target, tmp_path):
    geoms = [ALPHA, shapely.Polygon([(30.70, 57.60), (30.80, 57.60), (30.75, 57.65)])]
    imports.import_layer(target, "coverage", write_coverage(tmp_path / "c.geojson", geoms=geoms),
                         author="t")
    out = tmp_path / "export"
    run("export_layers.py", out, "--db", target, check=0)
    assert sorted(p.name for p in out.iterdir()) == ["coverage.geojson", "layers.gpkg", "towns.geojson"]
    import pyogrio
    assert sorted(name for name, _ in pyogrio.list_layers(out / "layers.gpkg")) == ["coverage", "towns"]
    for source, mapping in ((out / "layers.gpkg", {"layer": "coverage"}), (out / "coverage.geojson", None)):
        dry = imports.import_layer(target, "coverage", source, mapping=mapping, author="t", dry_run=True)
        assert dry.diff["unchanged"] == 2 and not dry.diff["changed"] and not dry.diff["added"]
    dry = imports.import_layer(target, "towns", out / "layers.gpkg", mapping={"layer": "towns"},
                               author="t", dry_run=True)
    assert dry.diff["unchanged"] == 2 and not dry.diff["changed"]
    again = run("export_layers.py", out, "--db", target, check=2)
    assert "--force" in again.stderr


def test_backup_is_a_readable_copy(dbp, tmp_path):
    imports.import_layer(dbp, "coverage", write_coverage(tmp_path / "c.geojson"), author="t")
    dest = tmp_path / "backups" / "copy.sqlite"
    with closing(db.connect_readonly(dbp)) as reader:  # the portal keeps reading meanwhile
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM coverage").fetchone()
        run("backup.py", dest, "--db", dbp, check=0)
    assert dump(dest) == dump(dbp)
    with closing(db.connect_readonly(dest)) as conn:
        assert len(layers.load_coverage(conn)) == 2 and len(layers.load_towns(conn)) == 2
    refused = run("backup.py", dest, "--db", dbp, check=2)
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    run("backup.py", dest, "--db", dbp, "--force", check=0)


def test_ctrl_c_while_writing_leaves_the_previous_layer(dbp, tmp_path):
    imports.import_layer(dbp, "coverage", write_coverage(tmp_path / "small.geojson"), author="t")
    before = dump(dbp)
    big = tmp_path / "big.geojson"
    boxes = [shapely.box(30.40 + (i % 300) * 3e-4, 57.40 + (i // 300) * 3e-4,
                         30.40 + (i % 300) * 3e-4 + 2e-4, 57.40 + (i // 300) * 3e-4 + 2e-4)
             for i in range(60_000)]
    coverage(live_rows(len(boxes)), boxes, 4326).to_file(big)
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "import_coverage.py"), str(big), "--db", str(dbp),
         "--progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
    )
    seen = b""
    deadline = time.monotonic() + 120
    while b"writing" not in seen and time.monotonic() < deadline:
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    assert b"writing" in seen, seen.decode(errors="replace")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (seen + err).decode(errors="replace")
    assert b"nothing was imported" in err
    assert dump(dbp) == before


def test_app_serves_the_new_layer_without_a_restart(dbp, tmp_path):
    from portal import create_app

    app = create_app({"DATABASE": str(dbp), "TESTING": True})
    client = app.test_client()
    imports.import_layer(dbp, "coverage", write_coverage(tmp_path / "dsl.geojson", "dsl"), author="t")
    assert client.get("/api/v1/towns/alpha").get_json()["has_fiber"] is False
    imports.import_layer(dbp, "coverage", write_coverage(tmp_path / "fiber.geojson"), author="t")
    body = client.get("/api/v1/towns/alpha").get_json()
    assert body["has_fiber"] is True
    assert [t["technology"] for t in body["technologies"]] == ["fiber"]
