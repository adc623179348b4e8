"""scripts/demand.py as staff run it, on SQLite and on PostgreSQL: thresholds (refusals leave the database as it
was) and exports."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
from enginetools import contents

from portal.data import db
from portal.listening import interest, store

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demand.py"
VILLAGE = (57.8123, 27.6145)  # inside Pechory


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def _register(target, n, data):
    with store.transaction(target) as conn:
        item = interest.parse(data, conn)
        interest.register(conn, item, f"household-{n}", db.utcnow())


def test_threshold_sets_progress_and_refusals_change_nothing(db_target):
    for n in range(3):
        _register(db_target, n, {"town": "pechory"})
    done = run("threshold", "pechory", "12", "--deadline", "2027-06-30", "--db", db_target)
    assert done.returncode == 0, done.stderr
    assert "3 of 12 households by 2027-06-30" in done.stdout
    before = contents(db_target)
    refusals = (["atlantis", "12"], ["pechory", "0"], ["pechory", "x"],
                ["pechory", "5", "--deadline", "soon"])
    for args in refusals:
        refused = run("threshold", *args, "--db", db_target)
        assert refused.returncode == 2 and "Error:" in refused.stderr, args
    assert contents(db_target) == before
    assert run("--help").stdout.rstrip().endswith("python scripts/demand.py export demand.gpkg")


def test_export_counts_per_cell_and_town_to_gpkg_and_csv(db_target, tmp_path):
    for n in range(12):
        _register(db_target, n, {"lat": VILLAGE[0] + n * 1e-5, "lon": VILLAGE[1]})
    _register(db_target, 99, {"town": "gdov"})
    gpkg = tmp_path / "demand.gpkg"
    assert run("export", gpkg, "--db", db_target).returncode == 0
    frame = gpd.read_file(gpkg, layer="demand")
    assert sorted(zip(frame["kind"], frame["town"], frame["households"])) == [("cell", "pechory", 12),
                                                                              ("town", "gdov", 1)]
    assert str(frame.crs) == "EPSG:4326"
    csv = tmp_path / "demand.csv"
    assert run("export", csv, "--db", db_target).returncode == 0
    table = pd.read_csv(csv)
    assert {"X", "Y", "households", "town", "cell"} <= set(table.columns)
    assert sorted(table["households"]) == [1, 12]
    again = run("export", csv, "--db", db_target)
    assert again.returncode == 2 and "--force" in again.stderr
    assert run("export", tmp_path / "demand.docx", "--db", db_target).returncode == 2
