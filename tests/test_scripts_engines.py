"""The staff scripts that read (and the two that forget and set targets) on both engines, in real processes.

The writing scripts have their own tests on both engines (``test_incident_script``,
``test_layer_scripts``); these are the rest, run as staff run them with ``--db`` naming the
test's copy of the demo: an SQLite file, or a ``postgresql://`` URL.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import pytest

from portal.data import statements as sql

ROOT = Path(__file__).resolve().parent.parent
PECHORY = (57.812371, 27.614539)


def run(script: str, *args, check: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)], capture_output=True,
                          text=True, cwd="/", env={**os.environ, "PORTAL_AUTHOR": "olga"}, timeout=300)
    assert proc.returncode == check, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def _listen(db_target) -> None:
    """Give the copy a subscriber, a household asking for fiber and a "wrong here" report, through the API."""
    from portal import create_app

    client = create_app({"DATABASE": str(db_target), "TESTING": True}).test_client()
    for path, body in (("/api/v1/subscriptions", {"email": "vera@example.org", "town": "pechory",
                                                   "services": ["internet"], "lang": "en"}),
                       ("/api/v1/interest", {"lat": PECHORY[0], "lon": PECHORY[1]}),
                       ("/api/v1/feedback", {"lat": PECHORY[0], "lon": PECHORY[1], "technology": "dsl",
                                             "message": "no DSL here"})):
        assert client.post(path, json=body).status_code == 202, path


def test_counts_listings_and_exports(db_target, tmp_path):
    _listen(db_target)
    counts = run("subscribers.py", "counts", "--db", db_target).stdout
    assert "pechory" in counts and "vera@" not in counts
    listed = run("feedback.py", "list", "--db", db_target).stdout
    assert "no DSL here" in listed
    out = tmp_path / "demand.gpkg"
    run("demand.py", "export", out, "--db", db_target)
    demand = gpd.read_file(out, layer="demand")
    assert sorted(zip(demand["kind"], demand["town"], demand["households"])) == [("cell", "pechory", 1)]
    status = run("notify.py", "status", "--db", db_target).stdout
    assert "pending" in status or "sent" in status or "nothing" in status
    trail = run("audit.py", "--json", "--db", db_target).stdout.splitlines()
    assert trail and all(json.loads(line)["action"] for line in trail)
    layers = tmp_path / "layers"
    run("export_layers.py", layers, "--db", db_target)
    assert len(gpd.read_file(layers / "towns.geojson")) > 10


def test_forget_deletes_the_address_everywhere(db_target):
    _listen(db_target)
    run("subscribers.py", "forget", "vera@example.org", "--db", db_target)
    with closing(sql.connect(db_target)) as conn:
        left = conn.execute("SELECT count(*) FROM subscriptions WHERE address = 'vera@example.org'").fetchone()[0]
    assert left == 0


@pytest.mark.parametrize("engine", ["postgresql"])
def test_a_static_export_of_a_postgresql_portal(db_target, tmp_path):
    out = tmp_path / "export"
    run("export_static.py", out, "--db", db_target)
    assert (out / "index.html").exists() and (out / "towns" / "pechory" / "index.html").exists()
