"""Under steady load, gunicorn workers survive coverage imports and incident writes, and the
next request after a write serves the new data.

Real parts only: gunicorn with the shipped settings on a copy of the demo database, visitors
in threads, the staff scripts run as staff run them, and meanwhile a stream of incident
updates (the write the scripts' ``update`` makes, back to back, as many staff posting at once
would): every write opens the database anew in another process while the workers keep reading.
It runs on SQLite and on PostgreSQL (``PORTAL_DB`` a URL, the scripts given the same URL).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import shape

from portal.incidents import writes as incidents

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
VISITORS = 4
WRITE_SECONDS = 15  # writes go on this long (at least two imports and one incident's life)
MAX_IMPORTS = 10  # alternating two versions of the layer: each one changes what the check answers
MAX_INCIDENTS = 10  # opened, updated and resolved by the script meanwhile, at most
MAX_UPDATES = 2000
PAUSE_S = 0.002  # between two updates: SQLite's lock is not fair, the scripts must get their turn
# The two versions of the coverage layer: one area around the town's centre.
VERSIONS = [
    {"technology": "fiber", "max_down_mbps": 500.0, "max_up_mbps": 500.0},
    {"technology": "wireless", "max_down_mbps": 30.0, "max_up_mbps": 10.0},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, bytes]:
    """GET a path on a new connection (sync workers close each one); return status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _get_json(port: int, path: str) -> dict:
    status, body = _get(port, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


@pytest.fixture
def server(db_target, tmp_path):
    """Run gunicorn with the shipped settings and WORKERS workers on the test's own copy of the demo database.

    ``PORTAL_DB`` is the SQLite file or the PostgreSQL URL (the ``engine`` under test).
    """
    path = db_target
    port, log = _free_port(), tmp_path / "gunicorn.log"
    env = {**os.environ, "PORTAL_DB": str(path), "PORTAL_WORKERS": str(WORKERS),
           "PORTAL_BIND": f"127.0.0.1:{port}", "PORTAL_MAILDIR": str(tmp_path / "mail")}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "docs" / "gunicorn.conf.py"),
             "--log-level", "info", "wsgi:app"],
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
        yield port, path, log, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Visitors:
    """Threads asking a few pages and answers over and over until told to stop."""

    def __init__(self, port: int, paths: list[str]):
        self.port, self.paths = port, paths
        self.stop = threading.Event()
        self.answered: dict[str, int] = {p: 0 for p in paths}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(VISITORS)]

    def _run(self, k: int) -> None:
        n = k
        while not self.stop.is_set():
            path = self.paths[n % len(self.paths)]
            n += 1
            try:
                status, body = _get(self.port, path)
                failure = None if status == 200 else f"{path}: {status} {body[:200]!r}"
            except OSError as e:  # reset, closed without an answer: the worker died under it
                failure = f"{path}: {type(e).__name__}: {e}"
            with self._lock:
                if failure:
                    self.failures.append(failure)
                else:
                    self.answered[path] += 1

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self._threads:
            t.join(timeout=90)


def _script(*args: str) -> str:
    """Run a staff script as staff do; return its stdout (it must succeed)."""
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (args, run.stdout, run.stderr)
    return run.stdout


def _write_layer(path: Path, centre, version: dict) -> None:
    """Write a one-area coverage layer around the point with geopandas."""
    gpd.GeoDataFrame([{**version, "status": "live", "feature_id": "a1"}],
                     geometry=[centre.buffer(0.01)], crs="EPSG:4326").to_file(path, driver="GeoJSON")


def _worker_events(log: Path) -> dict[str, int]:
    """Count gunicorn's lines about workers starting, being killed and exiting."""
    text = log.read_text(errors="replace")
    return {"booted": len(re.findall(r"Booting worker with pid", text)),
            "signalled": len(re.findall(r"Worker \(pid:\d+\) was sent", text)),
            "exited": len(re.findall(r"Worker \(pid:\d+\) exited", text)),
            "timeouts": len(re.findall(r"WORKER TIMEOUT", text))}


def test_workers_survive_imports_and_incident_writes_under_load_and_serve_new_data(server, tmp_path):
    port, path, log, proc = server
    centre = shapely.point_on_surface(shape(_get_json(port, "/api/v1/towns/pechory")["geometry"]))
    check = f"/api/v1/check?lat={centre.y:.6f}&lon={centre.x:.6f}"
    status = "/api/v1/status?town=pechory"
    layer = tmp_path / "coverage.geojson"

    def available() -> list[dict]:
        return _get_json(port, check)["available"]

    def incident_ids() -> set[int]:
        return {i["id"] for i in _get_json(port, status)["incidents"]}

    def open_incident(title: str) -> int:
        return int(_script("scripts/incident.py", "open", "--title", title, "--service", "internet",
                           "--town", "pechory", "--db", str(path)).strip().splitlines()[-1])

    ongoing = open_incident("Slow internet in Pechory")
    assert ongoing in incident_ids()
    imports_done = threading.Event()
    errors: list[BaseException] = []
    cycles: list[int] = []
    updates: list[str] = []
    imported: list[dict] = []

    def in_thread(work):
        def run() -> None:
            try:
                work()
            except BaseException as e:  # noqa: BLE001 -- raised again by the test's own thread
                errors.append(e)
        return threading.Thread(target=run, daemon=True)

    def incident_scripts() -> None:
        """Open, update and resolve incidents with the script until the imports are done."""
        while not cycles or (not imports_done.is_set() and len(cycles) < MAX_INCIDENTS):
            opened = open_incident(f"Fibre cut {len(cycles)}")
            assert opened in incident_ids()  # the next request has it
            _script("scripts/incident.py", "update", str(opened), "--status", "identified",
                    "--message", "Found it", "--db", str(path))
            _script("scripts/incident.py", "resolve", str(opened), "--message", "Repaired",
                    "--db", str(path))
            assert opened not in incident_ids()
            cycles.append(opened)

    def update_stream() -> None:
        """Post updates to the ongoing incident back to back until the imports are done."""
        while not imports_done.is_set() and len(updates) < MAX_UPDATES:
            message = f"Still looking, update {len(updates)}"
            incidents.update_incident(path, ongoing, status="identified", message=message, author="test")
            updates.append(message)
            time.sleep(PAUSE_S)

    with Visitors(port, [check, status, "/towns/pechory"]) as visitors:
        writers = [in_thread(incident_scripts), in_thread(update_stream)]
        for writer in writers:
            writer.start()
        try:
            deadline = time.monotonic() + WRITE_SECONDS
            while len(imported) < 2 or (time.monotonic() < deadline and len(imported) < MAX_IMPORTS):
                version = VERSIONS[len(imported) % 2]
                _write_layer(layer, centre, version)
                _script("scripts/import_coverage.py", str(layer), "--db", str(path), "--replace-all")
                imported.append(version)
                # The import has committed: the very next request answers from the new layer.
                assert available() == [version], len(imported)
        finally:
            imports_done.set()
            for writer in writers:
                writer.join(timeout=300)
    if errors:
        raise errors[0]

    # Every visitor's request was answered, on every path, by workers that never died.
    assert visitors.failures == [], f"{len(visitors.failures)} failed requests: {visitors.failures[:5]}"
    assert all(count > 0 for count in visitors.answered.values()), visitors.answered
    assert proc.poll() is None
    assert _worker_events(log) == {"booted": WORKERS, "signalled": 0, "exited": 0, "timeouts": 0}, \
        log.read_text(errors="replace")[-3000:]
    assert cycles and updates  # the writes did happen meanwhile
    # After the last write, every next request (whichever worker takes it) has the new data.
    for _ in range(3 * WORKERS):
        assert available() == [imported[-1]]
        assert _get_json(port, f"/api/v1/incidents/{ongoing}")["updates"][-1]["message"] == updates[-1]
    _script("scripts/incident.py", "resolve", str(ongoing), "--message", "Fixed", "--db", str(path))
    for _ in range(3 * WORKERS):
        assert ongoing not in incident_ids()
