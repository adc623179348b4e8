"""The provider in every footer, the restoration deadline passed or not, and the written claim to print."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dbtools import database_with_towns, square_town
from enginetools import engine_copy, reading

from portal import answers, create_app
from portal.incidents import writes
from portal.incidents.reads import IncidentReads

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow
H = timedelta(hours=1)
TOWNS = [square_town("alpha", "Alpha", 30.0, 60.0)]
PROVIDER = {"PROVIDER_NAME": "Альфа Телеком", "PROVIDER_NAME_EN": "Alpha Telecom",
            "PROVIDER_PHONE": "+7 811 222-33-44", "PROVIDER_EMAIL": "help@alpha.example",
            "PROVIDER_HOURS": "Круглосуточно", "PROVIDER_HOURS_EN": "Day and night",
            "PROVIDER_ADDRESS": "Альфа, ул. Первая, 1", "PROVIDER_ADDRESS_EN": "1 First St, Alpha"}


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """A migrated SQLite database whose live towns are one hand-made square, built once."""
    return database_with_towns(tmp_path_factory.mktemp("claims") / "portal.sqlite", TOWNS)


@pytest.fixture
def target(engine, towns_template, tmp_path, request):
    """The test's own copy of the one-town database on the engine under test: a path or a postgresql:// URL."""
    return engine_copy(engine, towns_template, tmp_path, request)


def client(target, **config):
    """Return a test client with the clock at NOW and the test provider."""
    settings = {"DATABASE": str(target), "NOW": NOW, "TESTING": True, **PROVIDER, **config}
    return create_app(settings).test_client()


def outage(target, started: datetime, services=("internet",), resolved: datetime | None = None) -> int:
    """Record an outage in Alpha that started (and maybe ended) at the given times; return its id."""
    incident_id = writes.open_incident(target, title="Нет связи в Альфе", title_en="No service in Alpha",
                                       services=services, towns=["alpha"], at=started, author="ops", now=NOW)
    if resolved is not None:
        writes.resolve_incident(target, incident_id, message="Починили", message_en="Fixed", at=resolved,
                                author="ops", now=NOW)
    return incident_id


def words(html: str) -> str:
    """Return the words of a page, tags dropped and spaces (no-break ones too) folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("\xa0", " ").replace("\u202f", " ").split())


# --- deadline passed or not, from known times ----------------------------------------------------------


def test_thirty_hours_into_an_internet_outage_the_24_hour_deadline_passed_6_hours_ago(target):
    incident_id = outage(target, NOW - 30 * H)  # 2026-03-09 03:00 UTC
    found = client(target).get(f"/api/v1/incidents/{incident_id}").get_json()
    assert found["claims"] == [{
        "service": "internet", "incident_id": incident_id, "hours": 24, "due_at": "2026-03-10T03:00:00Z",
        "started_at": "2026-03-09T03:00:00Z", "ended_at": None, "ongoing": True,
        "as_of": "2026-03-10T09:00:00Z", "lasted_s": 30 * 3600, "late_s": 6 * 3600, "days": 1,
        "monthly_fee": 600, "owed": 20.0, "currency": "RUB",
        "url": f"/incidents/{incident_id}/claim/internet"}]
    page = words(client(target).get(f"/incidents/{incident_id}?lang=en").get_data(as_text=True))
    assert ("The contract's restoration deadline for Internet passed 6 h ago (10 Mar 2026, 6:00 AM (MSK)):"
            " you are owed a recalculation of the fee.") in page
    assert "Print a written claim for Internet" in page
    ru = words(client(target).get(f"/incidents/{incident_id}?lang=ru").get_data(as_text=True))
    assert "Срок восстановления услуги «Интернет» по договору истёк 6 ч назад" in ru


def test_twenty_hours_in_the_deadline_has_not_passed_and_there_is_no_claim(target):
    incident_id = outage(target, NOW - 20 * H, services=("internet", "phone"))
    web = client(target)
    found = web.get(f"/api/v1/incidents/{incident_id}").get_json()
    assert found["claims"] == []
    assert {c["service"]: c["left_s"] for c in found["clock"]} == {"internet": 4 * 3600, "phone": 52 * 3600}
    page = web.get(f"/incidents/{incident_id}?lang=en").get_data(as_text=True)
    assert 'id="deadline-passed"' not in page and "Print a written claim" not in page
    assert web.get(f"/incidents/{incident_id}/claim/internet").status_code == 404


def test_the_phone_deadline_is_72_hours(target):
    incident_id = outage(target, NOW - 73 * H, services=("internet", "phone"))
    found = client(target).get(f"/api/v1/incidents/{incident_id}").get_json()
    assert [(c["service"], c["late_s"], c["days"], c["owed"]) for c in found["claims"]] == [
        ("internet", 49 * 3600, 3, 60.0), ("phone", 3600, 1, 8.33)]


def test_a_resolved_outage_that_missed_its_deadline_still_has_its_claim(target):
    incident_id = outage(target, NOW - 50 * H, resolved=NOW - 10 * H)  # 40 hours without service
    with reading(target) as conn:
        found = answers.incident_report(IncidentReads.read(conn), incident_id, NOW)
    (claim,) = found["claims"]
    assert (claim["ongoing"], claim["ended_at"], claim["lasted_s"], claim["late_s"], claim["days"],
            claim["owed"]) == (False, "2026-03-09T23:00:00Z", 40 * 3600, 16 * 3600, 1, 20.0)
    page = client(target).get(f"/incidents/{incident_id}?lang=en").get_data(as_text=True)
    assert 'id="deadline-passed"' not in page  # not ongoing: no alarm, but the claim is offered
    assert f"/incidents/{incident_id}/claim/internet" in page


def test_monthly_fees_are_a_setting(target):
    incident_id = outage(target, NOW - 30 * H)
    found = client(target, MONTHLY_FEES={"internet": 900}).get(f"/api/v1/incidents/{incident_id}").get_json()
    assert (found["claims"][0]["monthly_fee"], found["claims"][0]["owed"]) == (900, 30.0)


# --- the written claim ----------------------------------------------------------------------------------


def test_the_claim_is_filled_in_from_the_incident_in_english(target):
    incident_id = outage(target, NOW - 30 * H)
    response = client(target).get(f"/incidents/{incident_id}/claim/internet?lang=en")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = words(html)
    assert "To: Alpha Telecom 1 First St, Alpha" in page
    assert "Claim for a recalculation of the fee" in page
    assert ("the Internet service has not been provided since 9 Mar 2026, 6:00 AM (MSK)"
            f" (incident {incident_id}") in page
    assert "by 10 Mar 2026, 12:00 PM (MSK) that is 1 d 6 h" in page
    assert ("within 24 hours of the outage's start, that is by 10 Mar 2026, 6:00 AM (MSK). That deadline was"
            " missed by 6 h.") in page
    assert ("RUB 600.00 a month) for each day, full or partial, without the service after that deadline"
            " (1 so far): RUB 600.00 × 1 / 30 = RUB 20.00") in page
    # Blank lines for what the portal never asks: nothing here can send them anywhere.
    assert "From:" in page and "Contract number:" in page and "Address where the service is provided:" in page
    assert html.count('class="blank') == 7
    assert "<form" not in html.split('id="claim"', 1)[1].split("</article>", 1)[0] and "<input" not in html
    assert "css/claim.css" in html


def test_the_claim_in_russian(target):
    incident_id = outage(target, NOW - 30 * H)
    html = client(target).get(f"/incidents/{incident_id}/claim/internet?lang=ru").get_data(as_text=True)
    page = words(html)
    assert "Кому: Альфа Телеком Альфа, ул. Первая, 1" in page
    assert "Претензия о перерасчёте абонентской платы" in page
    assert "Номер договора:" in page
    assert "600,00 ₽ × 1 / 30 = 20,00 ₽" in page


def test_a_claim_for_a_service_the_incident_does_not_hit_or_an_unknown_incident_is_404(target):
    incident_id = outage(target, NOW - 30 * H)
    web = client(target)
    assert web.get(f"/incidents/{incident_id}/claim/tv").status_code == 404
    assert web.get("/incidents/999/claim/internet").status_code == 404
    assert web.get("/incidents/abc/claim/internet").status_code == 404


def test_the_claim_stylesheet_prints_only_the_claim():
    css = (ROOT / "portal/web/static/css/claim.css").read_text(encoding="utf-8")
    printed = css.split("@media print", 1)[1]
    assert "header.site" in printed and "footer.site" in printed and ".screen-only" in printed
    assert "display: none" in printed


# --- the provider: every footer, every incident ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/towns", "/incidents", "/check?lat=60.05&lon=30.05"])
def test_every_footer_names_the_provider_and_how_to_reach_it(target, path):
    web = client(target)
    en = web.get(path + ("&" if "?" in path else "?") + "lang=en").get_data(as_text=True)
    ru = web.get(path + ("&" if "?" in path else "?") + "lang=ru").get_data(as_text=True)
    footer_en, footer_ru = (words(p.split("<footer", 1)[1]) for p in (en, ru))
    assert "Alpha Telecom" in footer_en and "Day and night" in footer_en and "1 First St, Alpha" in footer_en
    assert "Альфа Телеком" in footer_ru and "Круглосуточно" in footer_ru
    for footer in (footer_en, footer_ru):
        assert "+7 811 222-33-44" in footer and "help@alpha.example" in footer
    assert 'href="tel:+78112223344"' in en and 'href="mailto:help@alpha.example"' in en


def test_a_phone_written_with_brackets_still_dials(target):
    page = client(target, PROVIDER_PHONE="+7 (8112) 22-33-44").get("/?lang=en").get_data(as_text=True)
    assert '<a href="tel:+78112223344">+7 (8112) 22-33-44</a>' in page


def test_every_incident_page_says_how_to_reach_a_person(target):
    incident_id = outage(target, NOW - 2 * H)
    page = client(target).get(f"/incidents/{incident_id}?lang=en").get_data(as_text=True)
    contact = words(page.split('id="contact"', 1)[1].split("</section>", 1)[0])
    assert "Talk to a person at Alpha Telecom" in contact
    assert "Phone: +7 811 222-33-44" in contact and "E-mail: help@alpha.example" in contact
    assert "Hours: Day and night" in contact


def test_a_provider_named_only_in_russian_shows_marked_on_english_pages(target):
    page = client(target, PROVIDER_NAME_EN="").get("/?lang=en").get_data(as_text=True)
    assert '<span lang="ru">Альфа Телеком</span>' in page.split("<footer", 1)[1]


def test_the_demo_defaults_are_plainly_demo_values(app):
    assert "(demo)" in app.config["PROVIDER_NAME_EN"] and "демо" in app.config["PROVIDER_NAME"]
    assert app.config["PROVIDER_EMAIL"].endswith(".example")
