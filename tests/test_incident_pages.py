"""Incident pages, the status banner, "is it down here?" and the availability strips."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.incidents import writes as incidents
from tests.conftest import DEMO_NOW

NASTY = '<script>alert(1)</script> & "quotes"'


def html(client, url, status=200) -> str:
    """Return the page text, asserting its status."""
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    # CLDR puts narrow no-break spaces in times ("7:40 PM"); compare with plain spaces.
    return response.get_data(as_text=True).replace("\u202f", " ").replace("\xa0", " ")


def section(page: str, element_id: str) -> str:
    """Return the part of a page from the element with this id to the end of its section."""
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


def resolve_demo_outages(target):
    """Resolve the demo's two ongoing outages (the Gdov street and Velikiye Luki)."""
    for incident_id in (2, 3):
        incidents.resolve_incident(target, incident_id, message="Service is back.", author="ops",
                                   now=DEMO_NOW)


# --- banner -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/towns", "/incidents", "/incidents/1", "/search?q=zzzz"])
def test_every_page_has_the_banner_with_what_is_down_where(client, url):
    banner = section(html(client, url), "status-banner")
    assert "Internet: partial outage in" in banner
    assert '<a href="/towns/velikiye-luki">Velikiye Luki</a>' in banner
    assert '<a href="/towns/gdov">Gdov</a>' in banner
    assert '<a href="/incidents/3">Internet outage in Velikiye Luki</a>' in banner
    assert "Planned maintenance:" in banner and '<a href="/incidents/4">' in banner
    assert "(MSK)" in banner


def test_error_pages_keep_the_banner(client):
    assert 'id="status-banner"' in html(client, "/no-such-page", 404)


def test_banner_says_all_clear_on_the_next_request_after_the_outages_end(app, client):
    assert 'class="banner down"' in html(client, "/")
    resolve_demo_outages(app.config["DATABASE"])
    page = html(client, "/")
    banner = section(page, "status-banner")
    assert '<section class="banner ok" id="status-banner"' in page
    assert "All services are working normally" in banner
    assert "/incidents/4" in banner  # the upcoming maintenance is still announced


def test_nav_links_to_the_incidents_page(client):
    assert '<a href="/incidents">Outages</a>' in html(client, "/")


# --- /incidents ---------------------------------------------------------------------------------------


def test_incidents_page_lists_ongoing_then_upcoming_then_history(client):
    page = html(client, "/incidents")
    ongoing, upcoming, history = (section(page, i) for i in ("ongoing", "upcoming", "history"))
    assert 'id="incident-3"' in ongoing and 'id="incident-2"' in ongoing
    assert 'id="incident-4"' in upcoming and 'id="incident-4"' not in ongoing
    assert 'id="incident-1"' in history and 'id="incident-3"' not in history
    assert "lasted 21 h 50 min" in history  # the cable-TV story: 19:40 Sunday to 17:30 Monday
    assert page.index('id="ongoing"') < page.index('id="upcoming"') < page.index('id="history"')


def test_history_filters_by_town_and_service(client):
    page = html(client, "/incidents?town=pechory&service=internet")
    assert "Outages and maintenance in Pechory" in page
    history = section(page, "history")
    assert "Internet outage in Pechory" in history
    assert "Velikiye Luki" not in section(page, "ongoing")
    assert "Porkhov" not in history
    tv = html(client, "/incidents?town=porkhov&service=tv")
    assert "Cable TV off the air in Porkhov" in tv and "Planned equipment upgrade" in section(tv, "upcoming")


def test_incidents_page_refuses_bad_filters_plainly(client):
    page = html(client, "/incidents?service=radio", 400)
    assert "radio" in page and "internet" in page
    page = html(client, "/incidents?town=pechry", 404)
    assert "pechry" in page and 'href="/towns/pechory"' in page
    assert "page" in html(client, "/incidents?page=0", 400)
    assert "page" in html(client, "/incidents?page=x", 400)


def test_incidents_history_pages_are_counted_like_the_town_list(client):
    # The demo's history fits on one page: "all" shows the same, a second page does not exist.
    everything = section(html(client, "/incidents?page=all"), "history")
    assert everything == section(html(client, "/incidents"), "history")
    refused = html(client, "/incidents?page=2", 400)
    assert "page" in refused and "from 1 to 1" in refused


def test_incidents_page_shows_a_new_incident_without_restart(app, client):
    assert "Slow TV in Dno" not in html(client, "/incidents")
    incidents.open_incident(app.config["DATABASE"], title="Slow TV in Dno", services=["tv"], towns=["dno"],
                            kind="degraded", author="ops", now=DEMO_NOW, at=DEMO_NOW - timedelta(minutes=30))
    assert "Slow TV in Dno" in section(html(client, "/incidents"), "ongoing")


# --- /incidents/<id> ----------------------------------------------------------------------------------


def test_incident_page_tells_the_cable_tv_story(client):
    page = html(client, "/incidents/1")
    assert "<h1>No cable TV in one apartment building in Pskov</h1>" in page
    assert "Outage · Resolved · TV." in page
    assert "Lasted 21 h 50 min" in page
    timeline = section(page, "timeline")
    stamps = re.findall(r'<time datetime="([^"]+)">', timeline)
    assert stamps == sorted(stamps) and len(stamps) == 5
    assert "1 Nov 2026, 7:40 PM (MSK)" in timeline  # a Sunday evening, local time, zone named
    assert "burned through by roofers" in timeline
    assert 'id="cause">Fibre burned through by roofers' in page
    assert "restored within the deadline of 24 h" in section(page, "deadline")
    assert "expected by" in page  # the ETA revisions are kept
    assert '<a href="/towns/pskov">Pskov</a> — part of the town' in section(page, "affected")
    assert "folium-map" in page and 'class="map-data"' in page
    assert 'Permanent link: <a href="http://127.0.0.1:5000/incidents/1">' in page


def test_incident_page_shows_the_clock_while_it_lasts(client):
    page = html(client, "/incidents/3")
    assert "Ongoing for 2 h 10 min" in page
    assert "restore by 23 Nov 2026, 12:50 PM (MSK) — 21 h 50 min left." in section(page, "deadline")
    assert 'id="eta">22 Nov 2026, 5:00 PM (MSK)' in page
    assert '<a href="/towns/velikiye-luki">Velikiye Luki</a></li>' in section(page, "affected")


def test_incident_page_says_plainly_when_the_deadline_was_missed(client):
    deadline = section(html(client, "/incidents/2"), "deadline")
    assert "deadline missed by 5 d 19 h" in deadline
    sebezh = [i for i in client.get("/api/v1/incidents?status=resolved&town=sebezh").get_json()["incidents"]]
    deadline = section(html(client, sebezh[0]["url"]), "deadline")
    assert "Internet:" in deadline and "was missed by 6 h 30 min" in deadline
    assert "Phone:" in deadline and "restored within the deadline of 72 h" in deadline


def test_maintenance_page_shows_its_window(client):
    page = html(client, "/incidents/4")
    assert "Planned maintenance · Scheduled" in page
    assert "Planned from 24 Nov 2026, 1:00 AM (MSK) to 24 Nov 2026, 5:00 AM (MSK)." in page
    assert 'id="deadline"' not in page
    assert "/towns/porkhov" in section(page, "affected") and "/towns/pskov" in section(page, "affected")


@pytest.mark.parametrize("url", ["/incidents/999", "/incidents/x", "/incidents/1.5", "/incidents/-1",
                                 "/incidents/99999999999999999999999", "/incidents/%D9%A1"])
def test_unknown_or_malformed_incident_is_a_404_page(client, url):
    page = html(client, url, 404)
    assert "There is no page at this address." in page


# --- "Is it down here?" -------------------------------------------------------------------------------


def test_town_page_says_plainly_there_is_no_outage(client):
    status = section(html(client, "/towns/pechory"), "place-status")
    assert "Is it down here?" in status and "No known outage here." in status
    assert 'href="/incidents?town=pechory"' in status and 'href="/feeds/towns/pechory.atom"' in status


def test_town_page_lists_the_incidents_affecting_it(client):
    status = section(html(client, "/towns/velikiye-luki"), "place-status")
    assert "Yes: 1 known problem here right now." in status
    assert '<a href="/incidents/3">Internet outage in Velikiye Luki</a>' in status
    assert "Expected back by" in status
    maintenance = section(html(client, "/towns/porkhov"), "place-status")
    assert "No known outage here." in maintenance and "Planned maintenance here:" in maintenance


def test_point_check_on_the_cut_street_and_beside_it(client):
    on_street = section(html(client, "/check?lat=58.7443&lon=27.8160"), "place-status")
    assert '<a href="/incidents/2">' in on_street
    elsewhere = section(html(client, "/check?lat=58.7400&lon=27.8000"), "place-status")
    assert "No known outage here." in elsewhere


# --- availability strips ------------------------------------------------------------------------------


def test_town_page_shows_90_day_availability_per_service(client):
    avail = section(html(client, "/towns/pechory"), "availability")
    assert "Availability over the last 90 days" in avail
    for service in ("Internet", "TV", "Phone"):
        assert f">{service}: " in avail
    strips = re.findall(r'<ol class="strip" aria-hidden="true">(.*?)</ol>', avail, re.S)
    assert len(strips) == 3 and all(s.count("<li") == 90 for s in strips)
    # The outage day: colour (class), symbol and text, and a row in the text equivalent.
    assert '<li class="down" title="2026-09-08: outage">✕</li>' in strips[0]
    assert '<th scope="row">2026-09-08</th><td>✕ outage</td><td>6 h 25 min</td>' in avail
    assert "Internet: 99.70% available" in avail
    assert "TV: 100.00% available" in avail
    assert "No downtime." in avail  # TV and phone had none: not "less than a minute"


def test_partial_outage_days_are_marked_and_the_rule_is_published(client):
    avail = section(html(client, "/towns/pskov"), "availability")
    assert 'class="partial"' in avail and "partial outage or degraded service" in avail
    assert 'id="availability-rule"' in avail and "Availability rule" in avail


# --- escaping -----------------------------------------------------------------------------------------


def test_staff_text_is_escaped_on_every_page(app, client):
    incident_id = incidents.open_incident(
        app.config["DATABASE"], title=NASTY, services=["internet"], towns=["pechory"], message=NASTY,
        cause=NASTY, author="ops", now=DEMO_NOW, at=DEMO_NOW - timedelta(hours=1))
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;"
    for url in ("/", f"/incidents/{incident_id}", "/incidents", "/towns/pechory"):
        page = html(client, url)
        assert "<script>alert(1)" not in page, url
        assert escaped in page, url


def test_pages_in_russian_render(client):
    page = html(client, "/incidents/1?lang=ru")
    assert '<html lang="ru">' in page and 'id="timeline"' in page


def test_maintenance_timeline_lines_are_translated_and_no_cause_is_asked_for(client):
    done = [i for i in client.get("/api/v1/incidents?status=resolved").get_json()["incidents"]
            if i["kind"] == "maintenance"]
    assert done, "the demo has a completed maintenance window"
    page = client.get(f"/incidents/{done[0]['id']}", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Плановые работы начались." in page and "Плановые работы завершены." in page
    assert 'id="cause"' not in page
