"""The Statuspage-compatible /api/v2: all eight endpoints, read by a real Statuspage client.

Shapes as Statuspage documents its public API: every answer carries ``page``; components have
a status from Statuspage's five; incidents and maintenances carry their updates newest first,
each update with ``affected_components`` (code, name, old_status, new_status).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal import create_app
from portal.incidents import writes
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage",
                      "under_maintenance"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}
LISTS = {
    "summary.json": ("components", "incidents", "scheduled_maintenances", "status"),
    "status.json": ("status",), "components.json": ("components",),
    "incidents.json": ("incidents",), "incidents/unresolved.json": ("incidents",),
    "scheduled-maintenances.json": ("scheduled_maintenances",),
    "scheduled-maintenances/upcoming.json": ("scheduled_maintenances",),
    "scheduled-maintenances/active.json": ("scheduled_maintenances",),
}


def get(client, path: str) -> dict:
    """Return the JSON of a /api/v2 path, asserting 200."""
    response = client.get(f"/api/v2/{path}")
    assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
    return response.get_json()


def check_shapes(path: str, body: dict) -> None:
    """Assert the documented Statuspage shape of one answer."""
    assert set(body) == {"page", *LISTS[path]}, path
    assert {"id", "name", "url", "time_zone", "updated_at"} <= body["page"].keys()
    for component in body.get("components", []):
        assert component["status"] in COMPONENT_STATUSES
        assert component["updated_at"] is None or ISO_Z.match(component["updated_at"])
    for key, statuses in (("incidents", INCIDENT_STATUSES), ("scheduled_maintenances", MAINTENANCE_STATUSES)):
        for incident in body.get(key, []):
            assert incident["status"] in statuses, (path, incident["status"])
            assert {"id", "name", "impact", "created_at", "updated_at", "shortlink", "incident_updates",
                    "components"} <= incident.keys()
            stamps = [u["created_at"] for u in incident["incident_updates"]]
            assert stamps == sorted(stamps, reverse=True)
            for update in incident["incident_updates"]:
                assert update["status"] in statuses
                for affected in update["affected_components"]:
                    assert {"code", "name", "old_status", "new_status"} <= affected.keys()
                    assert {affected["old_status"], affected["new_status"]} <= COMPONENT_STATUSES


def test_every_v2_endpoint_answers_in_statuspage_shapes(client):
    for path in LISTS:
        check_shapes(path, get(client, path))
    assert [i["id"] for i in get(client, "incidents/unresolved.json")["incidents"]] == ["3", "2"]
    every = get(client, "incidents.json")["incidents"]
    assert {"1", "2", "3"} <= {i["id"] for i in every}
    upcoming = get(client, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"]
    assert [m["id"] for m in upcoming] == ["4"]
    assert get(client, "scheduled-maintenances/active.json")["scheduled_maintenances"] == []
    assert "5" in {m["id"] for m in get(client, "scheduled-maintenances.json")["scheduled_maintenances"]}


def test_component_updated_at_is_the_last_change_affecting_it(db_target):
    later = DEMO_NOW + timedelta(hours=3)
    writes.update_incident(db_target, 3, status="monitoring", message="Spliced; watching.", author="ops",
                           now=DEMO_NOW + timedelta(hours=1))
    client = create_app({"DATABASE": str(db_target), "NOW": later, "TESTING": True}).test_client()
    components = {c["id"]: c for c in get(client, "components.json")["components"]}
    assert components["internet"]["updated_at"] == "2026-11-22T13:00:00Z"  # the update to incident 3
    assert components["phone"]["updated_at"] == "2026-11-22T12:00:00Z"  # untouched since the build
    assert get(client, "status.json")["page"]["updated_at"] == "2026-11-22T13:00:00Z"
    incident = next(i for i in get(client, "incidents/unresolved.json")["incidents"] if i["id"] == "3")
    assert incident["status"] == "monitoring" and incident["monitoring_at"] == "2026-11-22T13:00:00Z"
    assert incident["updated_at"] == "2026-11-22T13:00:00Z"
    newest = incident["incident_updates"][0]
    assert newest["affected_components"] == [{"code": "internet", "name": "Internet",
                                             "old_status": "partial_outage", "new_status": "partial_outage"}]
    # Resolving moves the component back to operational on that update.
    writes.resolve_incident(db_target, 3, message="Fixed.", author="ops", now=DEMO_NOW + timedelta(hours=2))
    resolved = next(i for i in get(client, "incidents.json")["incidents"] if i["id"] == "3")
    assert resolved["incident_updates"][0]["affected_components"][0]["new_status"] == "operational"
    assert resolved["resolved_at"] == "2026-11-22T14:00:00Z"


def test_maintenance_moves_from_upcoming_to_active_and_back_to_operational(db_target):
    during = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW + timedelta(hours=35),
                         "TESTING": True}).test_client()
    assert get(during, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"] == []
    active = get(during, "scheduled-maintenances/active.json")["scheduled_maintenances"]
    assert [m["id"] for m in active] == ["4"] and active[0]["status"] == "in_progress"
    began = active[0]["incident_updates"][0]
    assert began["status"] == "in_progress"
    assert began["affected_components"][0]["new_status"] == "under_maintenance"
    components = {c["id"]: c for c in get(during, "components.json")["components"]}
    assert components["tv"]["status"] == "under_maintenance"
    assert components["tv"]["updated_at"] == "2026-11-23T22:00:00Z"  # the window began


def test_cancelled_maintenance_is_completed_with_its_notice_and_never_upcoming(db_target):
    writes.cancel_maintenance(db_target, 4, message="Postponed to next month.", author="ops",
                              now=DEMO_NOW + timedelta(hours=1))
    client = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW + timedelta(hours=2),
                         "TESTING": True}).test_client()
    assert get(client, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"] == []
    listed = get(client, "scheduled-maintenances.json")["scheduled_maintenances"]
    found = next(m for m in listed if m["id"] == "4")
    assert found["status"] == "completed" and found["resolved_at"] == "2026-11-22T13:00:00Z"
    assert found["incident_updates"][0]["body"] == "Postponed to next month."
    assert found["incident_updates"][0]["status"] == "completed"
    assert found["scheduled_for"] == "2026-11-23T22:00:00Z"


@pytest.fixture
def live_server(app):
    """Serve the app over HTTP on a free local port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_the_statuspage_npm_client_reads_all_eight_endpoints(live_server, client):
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "statuspage.io").is_dir():
        pytest.skip("needs node and `npm install` (statuspage.io, pinned in package.json)")
    run = subprocess.run([node, str(ROOT / "tests" / "statuspage_client.js"), live_server],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert set(found) == set(LISTS)
    for path, body in found.items():
        check_shapes(path, body)
        assert body == get(client, path), path  # the client saw what the portal answers
