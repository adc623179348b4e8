"""Atom feeds (parsed by feedparser) and the maintenance calendar (parsed by icalendar)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import feedparser
from icalendar import Calendar

from portal.config import ENVIRONMENT_SETTINGS
from portal.incidents import feeds
from portal.incidents import writes as incidents
from tests.conftest import DEMO_NOW

BASE = ENVIRONMENT_SETTINGS["BASE_URL"][1]  # the public origin feeds link to, whatever the Host header
HOST = urlsplit(BASE).hostname

NASTY = '<script>alert(1)</script> & "quotes"'


def atom(client, url):
    """Return the parsed feed, asserting it is well-formed Atom."""
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def calendar(client):
    """Return the parsed maintenance calendar."""
    response = client.get("/feeds/maintenance.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    return Calendar.from_ical(response.data)


def test_incidents_feed_has_every_incident_newest_update_first(client):
    parsed = atom(client, "/feeds/incidents.atom")
    everything = client.get("/api/v1/incidents?status=all").get_json()["incidents"]
    assert len(parsed.entries) == len(everything)
    updated = [e.updated_parsed for e in parsed.entries]
    assert updated == sorted(updated, reverse=True)
    entry = next(e for e in parsed.entries if e.link == BASE + "/incidents/3")
    assert entry.title == "Internet outage in Velikiye Luki — Identified"
    assert "A backbone cable to Velikiye Luki was damaged" in entry.summary
    assert "Expected restoration: 2026-11-22 17:00 MSK" in entry.summary
    assert {t.term for t in entry.tags} == {"internet", "outage"}
    assert parsed.feed.links[0].href and any(link.rel == "self" for link in parsed.feed.links)


def test_town_feed_has_only_that_towns_incidents(client):
    parsed = atom(client, "/feeds/towns/pechory.atom")
    assert [e.title for e in parsed.entries] == ["Internet outage in Pechory — Resolved"]
    assert "Pechory" in parsed.feed.title
    gdov = atom(client, "/feeds/towns/gdov.atom")
    assert [e.link for e in gdov.entries] == [BASE + "/incidents/2"]  # an area inside the town


def test_unknown_town_feed_is_404(client):
    response = client.get("/feeds/towns/atlantis.atom")
    assert response.status_code == 404


def test_feed_shows_a_new_incident_on_the_next_request(app, client):
    incidents.open_incident(app.config["DATABASE"], title="No TV in Dno", services=["tv"], towns=["dno"],
                            author="ops", now=DEMO_NOW, at=DEMO_NOW - timedelta(minutes=10))
    parsed = atom(client, "/feeds/towns/dno.atom")
    assert parsed.entries[0].title == "No TV in Dno — Investigating"


def test_maintenance_calendar_has_one_event_per_window_in_utc(client):
    events = {str(e["uid"]): e for e in calendar(client).walk("VEVENT")}
    assert set(events) == {f"incident-4@{HOST}", f"incident-5@{HOST}"}
    upgrade = events[f"incident-4@{HOST}"]
    assert str(upgrade["summary"]) == "Planned equipment upgrade in Pskov and Porkhov"
    assert upgrade.decoded("dtstart") == datetime(2026, 11, 23, 22, 0, tzinfo=timezone.utc)
    assert upgrade.decoded("dtend") == datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
    assert upgrade.decoded("dtstart").utcoffset() == timedelta(0)
    assert str(upgrade["location"]) == "Porkhov, Pskov"
    assert "upgrading the equipment" in str(upgrade["description"])
    assert BASE + "/incidents/4" in str(upgrade["description"])


def test_maintenance_uids_are_stable_between_requests(client):
    first = [str(e["uid"]) for e in calendar(client).walk("VEVENT")]
    assert first == [str(e["uid"]) for e in calendar(client).walk("VEVENT")]


def test_staff_text_is_escaped_in_feeds_and_calendar(app, client):
    target = app.config["DATABASE"]  # the app's own copy of the demo, on the engine under test
    incident_id = incidents.open_incident(target, title=NASTY, services=["internet"], towns=["pechory"],
                                          message=NASTY, author="ops", now=DEMO_NOW,
                                          at=DEMO_NOW - timedelta(hours=1))
    raw = client.get("/feeds/incidents.atom").get_data(as_text=True)
    assert "<script>" not in raw
    entry = next(e for e in atom(client, "/feeds/towns/pechory.atom").entries
                 if e.link.endswith(f"/incidents/{incident_id}"))
    assert entry.title == f"{NASTY} — Investigating"
    incidents.schedule_maintenance(target, title=NASTY, services=["tv"], towns=["pechory"],
                                   start=DEMO_NOW + timedelta(days=3), end=DEMO_NOW + timedelta(days=3, hours=2),
                                   message=NASTY + "; line two,\nwith a comma", author="ops", now=DEMO_NOW)
    event = next(e for e in calendar(client).walk("VEVENT") if str(e["summary"]) == NASTY)
    assert str(event["description"]).startswith(NASTY + "; line two,\nwith a comma")


def test_feeds_module_works_without_flask():
    incident = {"id": 7, "title": "A & B", "kind": "outage", "status": "resolved", "services": ["tv"],
                "started_at": "2026-01-01T10:00:00Z", "resolved_at": "2026-01-01T12:00:00Z", "eta": None,
                "url": "/incidents/7", "updated_at": "2026-01-01T12:00:00Z",
                "updates": [{"at": "2026-01-01T12:00:00Z", "status": "resolved", "message": "Back <now>."}]}
    body = feeds.incidents_atom([incident], feed_id="urn:test", title="T", site_url="http://x/",
                                self_url="http://x/feed", base_url="http://x/", author="P", tz="Europe/Moscow",
                                zone_label="MSK")
    parsed = feedparser.parse(body)
    assert not parsed.bozo and parsed.entries[0].title == "A & B — resolved"
    assert "Back <now>." in parsed.entries[0].summary and "2026-01-01 15:00 MSK" in parsed.entries[0].summary
