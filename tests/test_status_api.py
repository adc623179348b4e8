"""Incident and status JSON (v1, the contract) and the Statuspage-compatible v2 JSON."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal import create_app
from portal.incidents import writes as incidents
from tests.conftest import DEMO_NOW

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CONTRACT_FIELDS = {"id", "title", "kind", "status", "services", "started_at", "resolved_at", "eta", "towns", "url"}
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}


def get(client, url, status=200):
    """Return the JSON body, asserting the status and the type."""
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    return response.get_json()


def ids(body) -> set[int]:
    """Return the incident ids of a list answer."""
    return {i["id"] for i in body["incidents"]}


def test_incidents_default_to_active_including_upcoming_maintenance(client):
    body = get(client, "/api/v1/incidents")
    assert ids(body) == {2, 3, 4}
    for item in body["incidents"]:
        assert CONTRACT_FIELDS <= item.keys()
        assert ISO_Z.match(item["started_at"]) and item["url"] == f"/incidents/{item['id']}"


def test_incidents_filter_by_status_town_and_service(client):
    assert 1 in ids(get(client, "/api/v1/incidents?status=resolved"))
    assert not ids(get(client, "/api/v1/incidents?status=resolved")) & {2, 3, 4}
    everything = get(client, "/api/v1/incidents?status=all")["incidents"]
    assert len(everything) == len(get(client, "/api/v1/incidents?status=active")["incidents"]) + len(
        get(client, "/api/v1/incidents?status=resolved")["incidents"])
    pechory = get(client, "/api/v1/incidents?status=all&town=pechory&lang=en")["incidents"]
    assert [i["title"] for i in pechory] == ["Internet outage in Pechory"]
    assert get(client, "/api/v1/incidents?town=pechory") == {"incidents": []}
    tv = get(client, "/api/v1/incidents?status=all&service=tv")["incidents"]
    assert tv and all("tv" in i["services"] for i in tv)
    # An area inside a town counts for that town.
    assert ids(get(client, "/api/v1/incidents?town=gdov")) == {2}


@pytest.mark.parametrize("query,word", [("status=open", "open"), ("service=radio", "radio"),
                                        ("status=active&service=TV", "TV")])
def test_incidents_refuse_bad_values_with_400(client, query, word):
    body = get(client, f"/api/v1/incidents?{query}", 400)
    assert word in body["error"]


def test_incidents_unknown_town_is_404_with_suggestions(client):
    body = get(client, "/api/v1/incidents?town=pechry", 404)
    assert "pechry" in body["error"] and "pechory" in [s["slug"] for s in body["suggestions"]]


def test_one_incident_has_its_updates_oldest_first_and_geometry(client):
    body = get(client, "/api/v1/incidents/1")
    assert CONTRACT_FIELDS <= body.keys()
    stamps = [u["at"] for u in body["updates"]]
    assert stamps == sorted(stamps) and all(ISO_Z.match(s) for s in stamps)
    assert [u["status"] for u in body["updates"]][-1] == "resolved"
    assert body["geometry"]["type"] == "Polygon"
    assert body["affected_towns"] == ["pskov"]


@pytest.mark.parametrize("incident_id", ["999", "abc", "1.0", "-3", "99999999999999999999"])
def test_unknown_incident_is_404_json(client, incident_id):
    assert "error" in get(client, f"/api/v1/incidents/{incident_id}", 404)


def test_status_of_a_town(client):
    body = get(client, "/api/v1/status?town=velikiye-luki")
    assert body["down"] is True and [i["id"] for i in body["incidents"]] == [3] and body["maintenance"] == []
    body = get(client, "/api/v1/status?town=pskov")
    assert body["down"] is False and [m["id"] for m in body["maintenance"]] == [4]
    assert get(client, "/api/v1/status?town=pechory") == {"down": False, "incidents": [], "maintenance": []}


def test_status_of_a_point_on_and_off_the_cut_street(client):
    assert get(client, "/api/v1/status?lat=58.7443&lon=27.8160")["down"] is True
    assert get(client, "/api/v1/status?lat=58.7400&lon=27.8000")["down"] is False


@pytest.mark.parametrize("query", ["", "lat=58.7", "lat=abc&lon=27", "lat=91&lon=27", "lat=&lon=", "town="])
def test_status_refuses_a_missing_or_bad_place_with_400(client, query):
    assert "error" in get(client, f"/api/v1/status?{query}", 400)


def test_status_unknown_town_is_404(client):
    assert get(client, "/api/v1/status?town=atlantis", 404)["suggestions"] is not None


@pytest.mark.parametrize("name", ["Великие Луки", "Velikiye Luki", "великие луки", "Velikie Luki",
                                  "Великие Лукии", "VELIKIYE-LUKI", " velikiye-luki "])
def test_status_takes_any_name_the_search_takes(client, name):
    # The search box finds the town by this name, so the status answer must too (and agree with the slug).
    assert get(client, "/api/v1/towns?q=" + name)["towns"][0]["slug"] == "velikiye-luki"
    assert get(client, "/api/v1/status?town=" + name) == get(client, "/api/v1/status?town=velikiye-luki")


def test_status_name_of_no_town_is_404_with_suggestions_in_its_words(client):
    body = get(client, "/api/v1/status?town=Печорыы")  # one letter too many still finds Печоры
    assert body == {"down": False, "incidents": [], "maintenance": []}
    body = get(client, "/api/v1/status?town=Gdovo-Luki", 404)
    assert "Gdovo-Luki" in body["error"]
    assert [s["slug"] for s in body["suggestions"]][:1] == ["gdov"]
    # A name that starts several towns answers for none of them: the client is told which it may mean.
    assert len(get(client, "/api/v1/towns?q=Novo")["towns"]) > 1
    body = get(client, "/api/v1/status?town=Novo", 404)
    assert {"novosokolniki", "novorzhev"} <= {s["slug"] for s in body["suggestions"]}


def test_summary_gives_every_service_and_the_active_incidents(client):
    body = get(client, "/api/v1/summary")
    assert set(body["services"]) == {"internet", "tv", "phone"}
    assert body["services"]["internet"]["status"] == "partial_outage"
    assert body["services"]["tv"]["status"] == "operational"
    assert ids(body) == {2, 3, 4} and ISO_Z.match(body["updated_at"])


def test_the_deadline_setting_holds_in_every_answer(db_target):
    client = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True,
                         "RESTORE_DEADLINE_HOURS": {"internet": 2, "tv": 2, "phone": 2}}).test_client()
    town = get(client, "/api/v1/towns/velikiye-luki")
    seen = [get(client, "/api/v1/incidents/3"),
            *get(client, "/api/v1/incidents")["incidents"], *get(client, "/api/v1/summary")["incidents"],
            *get(client, "/api/v1/status?town=velikiye-luki")["incidents"], *town["incidents"],
            *get(client, f"/api/v1/check?lat={town['lat']}&lon={town['lon']}")["incidents"]]
    outage = [i for i in seen if i["id"] == 3]
    assert len(outage) == 6
    assert all({d["hours"] for d in i["deadline"].values()} == {2} for i in outage)


# --- Statuspage ---------------------------------------------------------------------------------------


def test_statuspage_summary_has_statuspage_shapes(client):
    body = get(client, "/api/v2/summary.json")
    assert set(body) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert {"id", "name", "url", "time_zone", "updated_at"} <= body["page"].keys()
    assert body["page"]["time_zone"] == "Europe/Moscow" and ISO_Z.match(body["page"]["updated_at"])
    components = {c["id"]: c for c in body["components"]}
    assert set(components) == {"internet", "tv", "phone"}
    assert all(c["status"] in COMPONENT_STATUSES for c in components.values())
    assert components["internet"]["status"] == "partial_outage"
    assert {i["id"] for i in body["incidents"]} == {"2", "3"}
    for incident in body["incidents"] + body["scheduled_maintenances"]:
        assert {"id", "name", "status", "impact", "created_at", "updated_at", "shortlink",
                "incident_updates"} <= incident.keys()
        assert incident["shortlink"].endswith(f"/incidents/{incident['id']}")
        for update in incident["incident_updates"]:
            assert {"status", "body", "created_at"} <= update.keys() and ISO_Z.match(update["created_at"])
        stamps = [u["created_at"] for u in incident["incident_updates"]]
        assert stamps == sorted(stamps, reverse=True)  # Statuspage lists updates newest first
    assert all(i["impact"] in {"none", "minor", "major", "critical"} for i in body["incidents"])
    maintenance = body["scheduled_maintenances"]
    assert [m["id"] for m in maintenance] == ["4"] and maintenance[0]["status"] == "scheduled"
    assert maintenance[0]["impact"] == "maintenance" and ISO_Z.match(maintenance[0]["scheduled_for"])
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}


def test_statuspage_status_has_the_page_and_indicator(client):
    body = get(client, "/api/v2/status.json")
    assert set(body) == {"page", "status"}
    assert body["status"]["indicator"] in {"none", "minor", "major", "critical", "maintenance"}


def test_statuspage_follows_the_incidents_on_the_next_request(app, client):
    target = app.config["DATABASE"]  # the app's own copy of the demo, on the engine under test
    for incident_id in (2, 3):
        incidents.resolve_incident(target, incident_id, message="Back.", author="ops", now=DEMO_NOW)
    body = get(client, "/api/v2/status.json")
    assert body["status"] == {"indicator": "none", "description": "All Systems Operational"}
    incidents.open_incident(target, title="Slow phone lines", services=["phone"], towns=["dno"],
                            kind="degraded", author="ops", now=DEMO_NOW, at=DEMO_NOW - timedelta(minutes=5))
    body = get(client, "/api/v2/summary.json")
    assert {c["id"]: c["status"] for c in body["components"]}["phone"] == "degraded_performance"
    assert body["incidents"][0]["impact"] == "minor" and body["status"]["indicator"] == "minor"
