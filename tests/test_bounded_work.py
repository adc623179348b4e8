"""Bounded work per request: what a client notices when it asks for too much.

``/api/v1/coverage.geojson`` simplifies only to the map's ladder of tolerances, keeping one copy
per rung whatever values clients send; an answer over the area or byte cap is a 400 naming
``bbox``; an answer over its time budget is a 503 with Retry-After. Every 405 says what is allowed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import create_app
from portal.coverage.geo import SIMPLIFY_LADDER, ladder_tolerance
from portal.web.request import get_snapshot
from tests.conftest import DEMO_NOW
from tests.test_load_and_writes import _free_port, _get

ROOT = Path(__file__).resolve().parent.parent
BBOX = "27.0,56.0,31.5,59.0"


def make_client(db_target, **config):
    """Return (app, client) on the demo database (a path or a postgresql:// URL) with these settings."""
    app = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True, **config})
    return app, app.test_client()


def test_ladder_is_the_maps_zoom_levels():
    # static/js/map.js asks Math.max(1, Math.round(40000 / 2 ** zoom)) metres.
    assert SIMPLIFY_LADDER == (1, 2, 5, 10, 20, 39, 78, 156, 313, 625, 1250, 2500, 5000, 10000)
    assert ladder_tolerance(0) == 1 and ladder_tolerance(300) == 313 and ladder_tolerance(9_999.5) == 10000
    assert ladder_tolerance(3.3) == 5  # nearest by ratio


def test_300_distinct_simplify_values_keep_the_cache_bounded(db_target):
    app, client = make_client(db_target)
    for n in range(300):
        value = 0.5 + n * 33.3  # 300 distinct values from 0.5 to ~9957 m
        response = client.get(f"/api/v1/coverage.geojson?bbox={BBOX}&simplify={value}")
        assert response.status_code == 200
    with app.test_request_context():
        kept = get_snapshot().coverage.display_cache_tolerances()
    assert len(kept) <= len(SIMPLIFY_LADDER)
    assert set(kept) <= {float(r) for r in SIMPLIFY_LADDER}


def test_values_on_one_rung_give_the_same_answer(client):
    first = client.get(f"/api/v1/coverage.geojson?bbox={BBOX}&simplify=300").data
    assert first == client.get(f"/api/v1/coverage.geojson?bbox={BBOX}&simplify=313").data


def test_too_many_areas_is_a_400_that_names_bbox(db_target):
    _, client = make_client(db_target, MAX_GEOJSON_FEATURES=10)
    response = client.get("/api/v1/coverage.geojson")
    assert response.status_code == 400
    body = response.get_json()
    assert body["parameter"] == "bbox" and "narrower bbox" in body["error"]
    # A small bbox is still answered.
    assert client.get("/api/v1/coverage.geojson?bbox=28.115,57.795,28.14,57.815").status_code == 200


def test_too_many_bytes_is_a_400_that_names_bbox(db_target):
    _, client = make_client(db_target, MAX_GEOJSON_BYTES=20_000)
    response = client.get("/api/v1/coverage.geojson")
    assert response.status_code == 400
    assert response.get_json()["parameter"] == "bbox" and "narrow the bbox" in response.get_json()["error"]


def test_over_budget_is_a_503_with_retry_after(db_target):
    _, client = make_client(db_target, REQUEST_BUDGET_SECONDS=1e-9)
    response = client.get(f"/api/v1/coverage.geojson?bbox={BBOX}&simplify=40")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "error" in response.get_json()
    # The worker is fine: with time to spare the same request is answered.
    _, relaxed = make_client(db_target)
    assert relaxed.get(f"/api/v1/coverage.geojson?bbox={BBOX}&simplify=40").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/summary", "/api/v2/components.json", "/towns",
                                  "/feeds/incidents.atom"])
def test_405_says_which_methods_are_allowed(client, path):
    response = client.post(path)
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "GET" in allowed and "POST" not in allowed
    if path.startswith("/api/"):
        assert response.get_json()["error"]
    else:
        assert response.mimetype in ("text/html", "application/json")


def _rss_kib(pid: int) -> int:
    """Return a process's resident memory (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_gunicorn_worker_memory_stays_flat_over_300_simplify_values(db_target, tmp_path):
    port, log = _free_port(), tmp_path / "gunicorn.log"
    env = {**os.environ, "PORTAL_DB": str(db_target), "PORTAL_WORKERS": "1", "PORTAL_BIND": f"127.0.0.1:{port}"}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                                 str(ROOT / "docs" / "gunicorn.conf.py"), "wsgi:app"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(port, "/api/v1/summary")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        worker = int(children[0])
        # Warm every rung once, so what follows could only grow by caching per value.
        for rung in SIMPLIFY_LADDER:
            assert _get(port, f"/api/v1/coverage.geojson?bbox={BBOX}&simplify={rung}")[0] == 200
        before = _rss_kib(worker)
        for n in range(300):
            status, _ = _get(port, f"/api/v1/coverage.geojson?bbox={BBOX}&simplify={0.5 + n * 33.3}")
            assert status == 200
        after = _rss_kib(worker)
        print(f"\ngunicorn worker RSS over 300 distinct simplify values: {before / 1024:.1f} MiB ->"
              f" {after / 1024:.1f} MiB ({(after - before) / 1024:+.1f} MiB)")
        assert after - before < 8 * 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
