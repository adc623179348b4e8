"""The iCalendar per town: the maintenance windows affecting that town only."""
from __future__ import annotations

from icalendar import Calendar


def events(client, slug):
    """Return the summaries of a town calendar's events."""
    response = client.get(f"/feeds/towns/{slug}.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    return [str(e["summary"]) for e in Calendar.from_ical(response.data).walk("VEVENT")]


def test_a_town_calendar_has_its_maintenance_only(client):
    everywhere = [str(e["summary"]) for e in
                  Calendar.from_ical(client.get("/feeds/maintenance.ics").data).walk("VEVENT")]
    pskov, pechory = events(client, "pskov"), events(client, "pechory")
    assert pskov and set(pskov) <= set(everywhere)
    assert len(pskov) < len(everywhere)
    assert not set(pechory) & set(pskov)
    assert client.get("/feeds/towns/atlantis.ics").status_code == 404
    assert b"/feeds/towns/pskov.ics" in client.get("/towns/pskov").data
