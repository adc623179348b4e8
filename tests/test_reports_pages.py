"""The one-tap report on the pages: the form on the home, town and point pages (Russian and English),
the self-check before sending, the answer without scripts, and "N people reported this" on incidents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from portal import create_app
from tests.conftest import DEMO_NOW

SAME = {"Sec-Fetch-Site": "same-origin"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(db_target):
    """The app on the test's own copy of the demo database, on SQLite and on PostgreSQL."""
    return create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True, "TRUSTED_PROXY_HOPS": 1})


def form_of(html: str) -> str:
    """Return the report form's section of a page."""
    found = re.search(r'<section class="report".*?</section>', html, re.S)
    assert found, "no report form on the page"
    return found.group(0)


def report(app, n, data, lang="ru", client=None):
    """Send the form as reporter ``n`` (its own network and browser), without scripts; return the answer."""
    return (client or app.test_client()).post(
        f"/reports?lang={lang}",
        data={"lang": lang, "website": "", **data},
        headers={**SAME, "X-Forwarded-For": f"10.{n}.8.1"},
    )


@pytest.mark.parametrize("path", ["/", "/towns/pechory", "/check?lat=57.8165&lon=27.6130"])
def test_the_form_is_on_home_town_and_point_pages_in_both_languages(app, path):
    client = app.test_client()
    ru = form_of(client.get(path + ("&" if "?" in path else "?") + "lang=ru").get_data(as_text=True))
    page = client.get(path + ("&" if "?" in path else "?") + "lang=en").get_data(as_text=True)
    en = form_of(page)
    assert "Не работает?" in ru and "Нет интернета" in ru and "Нет ТВ" in ru and "Нет телефона" in ru
    assert "Not working here?" in en and "No internet" in en and "No TV" in en and "No phone" in en
    # The self-check comes first (report.js shows it before sending); the hint is there without scripts.
    assert "Не работает только один сайт или одно устройство?" in ru
    assert "Is it only one site or device?" in en and "restart it and your router first" in en
    assert 'action="/reports"' in en and 'name="website"' in en
    assert '<script src="/static/js/report.js' in page and "<script>" not in page


def test_the_place_of_each_page(app):
    client = app.test_client()
    town = form_of(client.get("/towns/pechory").get_data(as_text=True))
    assert '<input type="hidden" name="town" value="pechory">' in town
    point = form_of(client.get("/check?lat=57.8165&lon=27.6130").get_data(as_text=True))
    assert 'name="lat" value="57.81650"' in point and 'name="town"' not in point
    home = form_of(client.get("/?lang=en").get_data(as_text=True))
    assert '<select id="report-town" name="town">' in home and '<option value="pskov">Pskov</option>' in home


def test_without_scripts_the_form_answers_with_the_count_and_the_usual_level(app):
    first = report(app, 1, {"service": "internet", "town": "pechory"}, lang="en")
    assert first.status_code == 202 and first.headers["Cache-Control"] == "no-store"
    assert "1 report in the last hour in Pechory" in first.get_data(as_text=True)
    assert "(usually 0)" in first.get_data(as_text=True)
    browser = app.test_client()
    second = report(app, 2, {"service": "internet", "town": "pechory"}, client=browser)
    text = second.get_data(as_text=True)
    assert "2 сообщения за последний час: Печоры" in text and "обычно 0" in text
    again = report(app, 2, {"service": "internet", "town": "pechory"}, lang="en", client=browser)
    assert "already counted" in again.get_data(as_text=True)


def test_bad_fields_and_other_sites_are_refused_on_the_page(app):
    bad = report(app, 3, {"service": "radio", "town": "pechory"}, lang="en")
    assert bad.status_code == 400 and "Service" in bad.get_data(as_text=True)
    elsewhere = app.test_client().post(
        "/reports", data={"service": "tv", "town": "pechory"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert elsewhere.status_code == 403


def staff(target, *args) -> str:
    """Run scripts/incident.py on the database (a path or a postgresql:// URL); return its last line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "incident.py"), *map(str, args), "--db", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_during_an_incident_the_answer_is_the_incident_and_it_shows_how_many_reported(app):
    incident = int(
        staff(
            app.config["DATABASE"],
            "open",
            "--title",
            "No TV in Pechory",
            "--service",
            "tv",
            "--town",
            "pechory",
            "--at",
            "2026-11-22T11:00:00Z",
            "--eta",
            "2026-11-22T15:00:00Z",
            "--author",
            "anna",
        )
    )
    for n in range(3):
        answer = report(app, 10 + n, {"service": "tv", "town": "pechory"}, lang="en").get_data(as_text=True)
    assert "We know about this problem: No TV in Pechory." in answer
    assert "Expected back by" in answer and f'href="/incidents/{incident}#subscribe"' in answer
    assert "3 people reported this." in answer
    # Another service in the same town is not this incident: the count is shown instead.
    other = report(app, 20, {"service": "phone", "town": "pechory"}, lang="en").get_data(as_text=True)
    assert "1 report in the last hour in Pechory" in other

    client = app.test_client()
    page = client.get(f"/incidents/{incident}?lang=ru").get_data(as_text=True)
    assert "сообщили 3 человека" in page
    assert client.get(f"/api/v1/incidents/{incident}").json["reported"] == 3
    listed = {i["id"]: i["reported"] for i in client.get("/api/v1/incidents?status=all").json["incidents"]}
    assert listed[incident] == 3 and all(v == 0 for k, v in listed.items() if k != incident)
    # Aggregated only: nothing of a reporter (address, cookie) in the public answers.
    public = client.get(f"/api/v1/incidents/{incident}").get_data(as_text=True) + page
    assert "10.10.8.1" not in public and "reporter" not in public
