"""An incident on a phone (360 × 740) in both languages: its own words, the provider's contacts, the claim."""
from __future__ import annotations

import pytest
from pagecheck import run_axe

# The demo's Gdov outage (incident 2) is days past its 24-hour restoration deadline.
GDOV = "/incidents/2"
WORDS = {
    "ru": {"title": "Нет интернета на одной улице в Гдове после обрыва кабеля", "where": "улица Ленина",
           "passed": "Срок восстановления услуги «Интернет» по договору истёк",
           "claim": "Распечатать письменную претензию",
           "heading": "Претензия о перерасчёте абонентской платы",
           "provider": "Плесков Линк"},
    "en": {"title": "No internet on one street in Gdov after a cable cut", "where": "Lenina St",
           "passed": "The contract's restoration deadline for Internet passed",
           "claim": "Print a written claim", "heading": "Claim for a recalculation of the fee",
           "provider": "Pleskov Link"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_an_overdue_incident_on_a_phone_names_the_place_the_provider_and_offers_the_claim(open_page, lang):
    said = WORDS[lang]
    page = open_page(GDOV, size="phone", lang=lang)
    assert page.locator("h1").inner_text() == said["title"]
    assert page.locator("#incident-status").is_visible()
    assert said["where"] in page.locator("#where-words").inner_text()
    assert said["passed"] in page.locator("#deadline-passed").inner_text()
    # The verdict, where and the deadline come before the map and the timeline: within the first screen.
    assert page.locator("#deadline-passed").bounding_box()["y"] < 740 * 1.5
    assert page.locator("main .lang-note").count() == 0  # nothing fell back to the other language
    contact = page.locator("#contact")
    assert said["provider"] in contact.inner_text()
    assert contact.locator('a[href^="tel:"]').is_visible()
    assert contact.locator('a[href^="mailto:"]').is_visible()
    footer = page.locator("footer.site")
    assert said["provider"] in footer.inner_text() and footer.locator('a[href^="tel:"]').count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert run_axe(page) == []

    link = page.locator("a.claim-link").first
    assert said["claim"] in link.inner_text() and link.is_visible()
    link.click()
    page.wait_for_load_state()
    assert page.url.endswith("/incidents/2/claim/internet")
    assert page.locator("#claim h1").inner_text() == said["heading"]
    assert said["provider"] in page.locator("#claim").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert run_axe(page) == []
    # Printed, only the claim is on paper: no site header, footer or instructions.
    page.emulate_media(media="print")
    assert page.locator("#claim").is_visible()
    assert not page.locator("header.site").is_visible() and not page.locator("footer.site").is_visible()
    assert not page.locator("#claim-howto").is_visible()
