"""Every gunicorn worker serves new data on its next request after an incident change or an import.

The workers serve the demo from SQLite and from PostgreSQL (``PORTAL_DB`` a URL). A rebuild is
each engine's own: build_db.py rebuilds an SQLite file in place; a PostgreSQL portal gets a built
file copied in with migrate_db.py --replace.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
import shapely

from portal.data import db, imports, layers
from portal.incidents import writes as incidents

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(db_target, tmp_path):
    """Run gunicorn with three workers (the shipped settings) on the test's own copy of the demo database.

    ``PORTAL_DB`` is the SQLite file or the PostgreSQL URL (the ``engine`` under test).
    """
    path = db_target
    port, log = _free_port(), tmp_path / "access.log"
    env = {**os.environ, "PORTAL_DB": str(path), "PORTAL_WORKERS": str(WORKERS),
           "PORTAL_BIND": f"127.0.0.1:{port}", "PORTAL_MAILDIR": str(tmp_path / "mail")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "docs" / "gunicorn.conf.py"),
         "--access-logfile", str(log), "--access-logformat", "%(p)s %(U)s", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/v1/summary", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        yield base, path, log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _get_many(url: str, count: int = 30) -> list[dict]:
    """Fetch a URL many times at once."""
    def one(_):
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())

    with ThreadPoolExecutor(12) as pool:
        return list(pool.map(one, range(count)))


def _pids(log: Path, path: str, since: int = 0) -> set[str]:
    """Return the worker pids that answered a path (from the access log, after line ``since``)."""
    time.sleep(0.3)
    lines = log.read_text().splitlines()[since:]
    return {line.split()[0] for line in lines if line.split()[1] == path}


def _from_every_worker(base: str, path: str, log: Path) -> list[dict]:
    """Fetch a path in bursts until every worker has answered it; return every answer.

    Which worker takes a connection is up to the kernel: a fast burst can be served by two.
    """
    since = len(log.read_text().splitlines()) if log.exists() else 0
    answers = []
    for _ in range(40):
        answers += _get_many(base + path)
        if len(_pids(log, path.split("?")[0], since)) == WORKERS:
            return answers
    raise AssertionError(f"not every worker answered {path}: {_pids(log, path.split('?')[0], since)}")


def test_every_worker_sees_a_new_incident_and_a_new_import(served, tmp_path):
    base, path, log = served
    # Warm every worker: each builds its snapshot and incident index for the current revision.
    before = _from_every_worker(base, "/api/v1/incidents", log)
    known = {i["id"] for i in before[0]["incidents"]}

    new_id = incidents.open_incident(path, title="Fibre cut on Lenina", services=["internet"],
                                     towns=["pechory"], author="test")
    after = _from_every_worker(base, "/api/v1/incidents", log)
    assert new_id not in known
    assert all(new_id in {i["id"] for i in answer["incidents"]} for answer in after)

    conn = db.connect_readonly(path)
    town = next(t for t in layers.load_towns(conn) if t.slug == "pechory")
    conn.close()
    centre = shapely.point_on_surface(town.geometry)
    check = f"/api/v1/check?lat={centre.y:.6f}&lon={centre.x:.6f}"
    assert any(a["available"] != [{"technology": "wireless", "max_down_mbps": 30.0, "max_up_mbps": 10.0}]
               for a in _from_every_worker(base, check, log))
    layer = tmp_path / "coverage.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": shapely.geometry.mapping(centre.buffer(0.01)),
        "properties": {"technology": "wireless", "status": "live", "max_down_mbps": 30,
                       "max_up_mbps": 10, "feature_id": "w1"}}]}))
    imports.import_layer(path, "coverage", layer, author="test", replace_all=True)  # one polygon replaces all
    answers = _from_every_worker(base, check, log)
    assert all(a["available"] == [{"technology": "wireless", "max_down_mbps": 30.0, "max_up_mbps": 10.0}]
               for a in answers)
    assert all(a["nearest"] == {} for a in answers)


# build_db.py rebuilds the portal in place: an SQLite file gets the build copied in while it is read
# (its log folded in); a PostgreSQL portal gets it in one transaction.
def test_every_worker_sees_a_rebuild_from_other_data(served, engine, tmp_path):
    base, path, log = served
    conn = db.connect_readonly(path)
    town = next(t for t in layers.load_towns(conn) if t.slug == "pechory")
    meta_before = dict(db.get_meta(conn))
    conn.close()
    centre = shapely.point_on_surface(town.geometry)
    check = f"/api/v1/check?lat={centre.y:.6f}&lon={centre.x:.6f}"
    assert all(a["available"] for a in _from_every_worker(base, check, log))
    # A change after the last build (on SQLite its commit sits in the write-ahead log the workers read).
    opened = incidents.open_incident(path, title="Fibre cut on Lenina", services=["internet"],
                                     towns=["pechory"], author="test")
    assert all(opened in {i["id"] for i in a["incidents"]} for a in _from_every_worker(base, check, log))

    # The same region rebuilt from other data: one wireless area around the town's centre.
    other = tmp_path / "geodata"
    shutil.copytree(ROOT / "geodata", other)
    (other / "coverage.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": shapely.geometry.mapping(centre.buffer(0.01)),
        "properties": {"technology": "wireless", "status": "live", "max_down_mbps": 30,
                       "max_up_mbps": 10, "feature_id": "w1"}}]}))
    run = subprocess.run([sys.executable, "scripts/build_db.py", "--db", str(path), "--geodata", str(other)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    answers = _from_every_worker(base, check, log)
    assert all(a["available"] == [{"technology": "wireless", "max_down_mbps": 30.0, "max_up_mbps": 10.0}]
               for a in answers)
    assert all(opened not in {i["id"] for i in a["incidents"]} for a in answers)  # the rebuild has its own
    with closing(db.connect_readonly(path)) as fresh:
        if engine == "sqlite":
            assert fresh.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert fresh.execute("SELECT count(*) FROM coverage JOIN meta ON key = 'live_coverage'"
                             " AND layer_id = CAST(value AS INTEGER)").fetchone()[0] == 1
        meta = db.get_meta(fresh)
        # No validator of the old data matches: the revision continues, the build is new.
        assert int(meta["revision"]) > int(meta_before["revision"]) + 1
        assert meta["build_id"] != meta_before["build_id"]
