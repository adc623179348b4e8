"""The issue's "Done when", end to end: staff run the script, the public sees it on the next request.

The app here runs on the real clock over a demo database built now, because the staff script
checks its times against the real clock too.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import feedparser
import pytest
from enginetools import engine_copy

from portal import create_app
from portal.config import GEODATA_DIR, ROOT
from portal.data import build, db

SCRIPT = ROOT / "scripts" / "incident.py"
TITLE = "No internet in Pechory"


@pytest.fixture(scope="module")
def live_template(tmp_path_factory):
    """Build a demo database placed around the real present."""
    path = tmp_path_factory.mktemp("live") / "portal.sqlite"
    build.build_database(path, GEODATA_DIR, now=db.utcnow())
    return path


@pytest.fixture
def live(engine, live_template, tmp_path, request):
    """Return (target, client): an app on the real clock over the test's own copy of the live demo.

    The copy is on the engine under test: the target is a path or a postgresql:// URL.
    """
    target = engine_copy(engine, live_template, tmp_path, request)
    client = create_app({"DATABASE": str(target), "TESTING": True}).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return target, client


def staff(target, *args: str) -> str:
    """Run the staff script as a member of staff would; return its stdout."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--db", str(target)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def page(client, url: str) -> str:
    """Return a page's text (times with plain spaces)."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True).replace("\u202f", " ")


def part(text: str, element_id: str) -> str:
    """Return the section of a page that starts at this id."""
    start = text.index(f'id="{element_id}"')
    return text[start:text.index("</section>", start)]


def test_an_outage_from_the_shell_to_the_public_and_into_history(live):
    target, client = live
    now = db.utcnow().replace(microsecond=0)
    started, identified, restored = now - timedelta(hours=2), now - timedelta(hours=1), now - timedelta(minutes=10)
    town = client.get("/api/v1/towns/pechory").get_json()
    assert "No known outage here." in part(page(client, "/towns/pechory"), "place-status")

    # Staff open the incident by the town's Russian name.
    out = staff(target, "open", "--title", TITLE, "--service", "internet", "--town", "Печоры",
                "--at", db.iso(started), "--message", "Subscribers in Pechory have no internet.",
                "--author", "duty-engineer")
    incident_id = int(out.strip().splitlines()[-1])
    link = f'<a href="/incidents/{incident_id}">{TITLE}</a>'

    # The very next requests show it everywhere.
    assert link in part(page(client, "/towns/pechory"), "place-status")
    check = page(client, f"/check?lat={town['lat']}&lon={town['lon']}")
    assert link in part(check, "place-status")
    banner = part(page(client, "/"), "status-banner")
    assert link in banner and '<a href="/towns/pechory">Pechory</a>' in banner
    status = client.get("/api/v1/status?town=pechory").get_json()
    assert status["down"] is True and [i["id"] for i in status["incidents"]] == [incident_id]
    feed = feedparser.parse(client.get("/feeds/incidents.atom").data)
    entry = next(e for e in feed.entries if e.link.endswith(f"/incidents/{incident_id}"))
    assert entry.title == f"{TITLE} — Investigating" and "Subscribers in Pechory" in entry.summary

    # An update, then the resolution, appear in the timeline.
    staff(target, "update", str(incident_id), "--status", "identified", "--at", db.iso(identified),
          "--message", "The node lost power; an engineer is bringing a generator.",
          "--eta", db.iso(now + timedelta(hours=1)), "--author", "duty-engineer")
    detail = page(client, f"/incidents/{incident_id}")
    assert "an engineer is bringing a generator" in part(detail, "timeline")
    assert 'id="eta">' in detail and "Ongoing for 2 h" in detail

    staff(target, "resolve", str(incident_id), "--at", db.iso(restored),
          "--message", "Mains power is back; service is restored.", "--author", "duty-engineer")
    detail = page(client, f"/incidents/{incident_id}")
    timeline = part(detail, "timeline")
    assert timeline.index("Subscribers in Pechory") < timeline.index("generator") < timeline.index("Mains power")
    assert "Outage · Resolved · Internet." in detail and "Lasted 1 h 50 min" in detail
    assert "restored within the deadline of 24 h" in part(detail, "deadline")

    # It has moved to history, with its duration, and the place is clear again.
    listing = page(client, "/incidents")
    assert f'id="incident-{incident_id}"' not in part(listing, "ongoing")
    history = part(listing, "history")
    row = history[history.index(f'id="incident-{incident_id}"'):]
    assert "lasted 1 h 50 min" in row[:row.index("</tr>")]
    assert client.get("/api/v1/status?town=pechory").get_json()["down"] is False
    assert "No known outage here." in part(page(client, "/towns/pechory"), "place-status")
    resolved = client.get("/api/v1/incidents?status=resolved&town=pechory").get_json()["incidents"]
    assert resolved[0]["id"] == incident_id and resolved[0]["resolved_at"] == db.iso(restored)
    feed = feedparser.parse(client.get("/feeds/towns/pechory.atom").data)
    assert feed.entries[0].title == f"{TITLE} — Resolved"
    assert "Mains power is back" in feed.entries[0].summary


def test_a_refused_script_call_changes_nothing_the_public_sees(live):
    target, client = live
    def public():
        found = client.get("/api/v1/incidents?status=all").get_json()["incidents"]
        return [(i["id"], i["status"], i["updated_at"]) for i in found]

    before = public()
    done = subprocess.run([sys.executable, str(SCRIPT), "open", "--db", str(target), "--title", "X",
                           "--service", "internet", "--town", "Atlantis", "--author", "duty-engineer"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0 and "Atlantis" in done.stderr
    assert public() == before
