"""Calendar and Atom by the book: what a calendar app or a feed reader does with our answers.

iCalendar (RFC 5545): DTSTAMP is the event's last change and SEQUENCE counts the changes, so a
client replaces its copy when either grows; the UID does not depend on who asks; one charset.
Atom (RFC 4287): an entry is published when it was made public, never in the future. Every page
names its feed in a <link rel="alternate">.
"""
from __future__ import annotations

import calendar
import re
from datetime import timedelta

import feedparser
from icalendar import Calendar

from portal import create_app
from portal.incidents import writes
from tests.conftest import DEMO_NOW


def events(client, path="/feeds/maintenance.ics", **headers) -> dict:
    """Return the calendar's events by UID, asserting its Content-Type."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return {str(e["uid"]): e for e in Calendar.from_ical(response.data).walk("VEVENT")}


def at(target, moment):
    """Return a client whose clock reads ``moment``."""
    return create_app({"DATABASE": str(target), "NOW": moment, "TESTING": True}).test_client()


def test_dtstamp_is_the_last_change_and_sequence_counts_changes(db_target):
    before = events(at(db_target, DEMO_NOW + timedelta(minutes=5)))
    uid = next(u for u in before if u.startswith("incident-4@"))
    assert before[uid]["dtstamp"].dt == DEMO_NOW and int(before[uid]["sequence"]) == 0
    # Asked again later without a change: the same revision (not the request time).
    assert events(at(db_target, DEMO_NOW + timedelta(hours=3)))[uid]["dtstamp"].dt == DEMO_NOW

    writes.edit_incident(db_target, 4, title="Equipment upgrade in Pskov and Porkhov (new routers)",
                         author="ops", now=DEMO_NOW + timedelta(hours=1))
    edited = events(at(db_target, DEMO_NOW + timedelta(hours=2)))[uid]
    assert edited["dtstamp"].dt == DEMO_NOW + timedelta(hours=1) and int(edited["sequence"]) == 1
    assert str(edited["status"]) == "CONFIRMED"

    writes.cancel_maintenance(db_target, 4, message="Postponed.", author="ops",
                              now=DEMO_NOW + timedelta(hours=2))
    cancelled = events(at(db_target, DEMO_NOW + timedelta(hours=3)))[uid]
    assert str(cancelled["status"]) == "CANCELLED" and int(cancelled["sequence"]) == 2
    assert cancelled["dtstamp"].dt == DEMO_NOW + timedelta(hours=2)
    # The town calendar says the same.
    town = events(at(db_target, DEMO_NOW + timedelta(hours=3)), "/feeds/towns/pskov.ics")[uid]
    assert str(town["status"]) == "CANCELLED" and int(town["sequence"]) == 2


def test_uid_does_not_follow_the_host_header(client):
    plain = set(events(client))
    assert plain == set(events(client, Host="evil.example.com"))
    assert all(u.endswith("@127.0.0.1") for u in plain)


def test_atom_never_publishes_in_the_future(client):
    response = client.get("/feeds/incidents.atom")
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.data)
    entries = {e.link.rsplit("/", 1)[1]: e for e in feed.entries}
    assert all(calendar.timegm(e.published_parsed) <= DEMO_NOW.timestamp() for e in feed.entries)
    # The planned window (it starts tomorrow) is published when it was announced.
    assert entries["4"].published == "2026-11-22T12:00:00+00:00"
    assert calendar.timegm(entries["4"].published_parsed) <= calendar.timegm(entries["4"].updated_parsed)


def test_every_page_links_its_feed(client):
    def feeds_of(path):
        html = client.get(path).get_data(as_text=True)
        return re.findall(r'<link rel="alternate" type="application/atom\+xml"[^>]*href="([^"]+)"', html)

    assert feeds_of("/") == ["/feeds/incidents.atom"]
    assert feeds_of("/incidents") == ["/feeds/incidents.atom"]
    assert feeds_of("/towns/pechory") == ["/feeds/towns/pechory.atom"]
    assert feeds_of("/incidents?town=pechory") == ["/feeds/towns/pechory.atom"]
