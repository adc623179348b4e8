"""What people do in a real browser: find a town despite a typo, click the map, see outages, switch language.

Every journey is made on the portal serving SQLite and on the one serving PostgreSQL.
"""
from __future__ import annotations

import json
import re
import urllib.request

import pytest
from pagecheck import wait_for_map, wait_for_paint


def _json(server: str, path: str) -> dict:
    """Return a JSON answer of the running server."""
    with urllib.request.urlopen(server + path, timeout=10) as response:
        return json.load(response)


def assert_map_drawn(page, town_shapes: int | None = None) -> None:
    """Assert that coverage and town shapes are on the map although no base tile loaded."""
    wait_for_map(page)
    frame = page.locator(".folium-map")
    assert int(frame.get_attribute("data-coverage-features")) > 0
    if town_shapes is not None:
        assert frame.get_attribute("data-town-shapes") == str(town_shapes)
    wait_for_paint(page)
    assert page.locator(".leaflet-tile-loaded").count() == 0  # the tile server really is unreachable


def test_typo_then_keyboard_pick_lands_on_the_town_with_verdict_and_map(open_page):
    page = open_page("/")
    box = page.get_by_role("combobox", name="Town or village")
    box.press_sequentially("Pechori", delay=30)
    option = page.locator("#town-suggestions").get_by_role("option", name=re.compile("Pechory"))
    option.first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    box.press("ArrowDown")
    first = page.locator("#town-suggestions").get_by_role("option").first
    assert first.get_attribute("aria-selected") == "true"
    with page.expect_navigation():
        box.press("Enter")
    assert page.url.endswith("/towns/pechory")
    assert page.get_by_role("heading", level=1).inner_text() == "Pechory"
    assert re.match(r"Yes: fiber covers about \d+% of Pechory", page.locator("#verdict").inner_text())
    assert_map_drawn(page, town_shapes=1)
    assert page.locator(".town-label").first.is_visible()


def test_typo_in_russian_then_click_pick(open_page):
    page = open_page("/", lang="ru", size="phone")
    box = page.get_by_role("combobox", name="Город или посёлок")
    box.press_sequentially("Печеры", delay=30)
    # The search box's own suggestions (the report form below has a town list too).
    option = page.locator("#town-suggestions").get_by_role("option", name=re.compile("Печоры"))
    # The Latin name beside the Russian one is marked English, for screen readers.
    assert option.first.locator("span[lang=en]").inner_text() == "Pechory"
    with page.expect_navigation():
        option.first.click()
    assert page.url.endswith("/towns/pechory")
    assert page.get_by_role("heading", level=1).inner_text() == "Печоры"
    assert page.locator("#verdict").inner_text().startswith("Да: оптика покрывает около")
    assert_map_drawn(page, town_shapes=1)


def test_region_map_shows_every_town_with_labels_without_tiles(open_page, server):
    page = open_page("/")
    wait_for_map(page, coverage=False)
    towns = len(_json(server, "/api/v1/towns")["towns"])
    assert page.locator(".folium-map").get_attribute("data-town-shapes") == str(towns)
    labels = page.locator(".town-label")
    assert labels.count() >= 5
    assert labels.filter(has_text="Pskov").first.is_visible()
    wait_for_paint(page, 200)  # zoomed out to the whole region, towns are small


def test_clicking_the_map_checks_that_point(open_page):
    page = open_page("/towns/pechory")
    wait_for_map(page)
    frame = page.locator(".folium-map")
    frame.scroll_into_view_if_needed()
    box = frame.bounding_box()
    with page.expect_navigation(url=re.compile(r"/check\?lat=")):
        frame.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.4})
    verdict = page.locator("#verdict").inner_text()
    assert re.match(r"(Fiber|Cable \(DOCSIS\)|DSL \(phone line\)|Fixed wireless): ", verdict), verdict
    assert page.get_by_role("heading", level=1).inner_text().startswith("What reaches 57.")
    assert_map_drawn(page)


def test_active_outage_is_in_the_banner_and_its_page(open_page, server):
    # The page is English: its title in English (JSON answers in the language ?lang= names).
    active = _json(server, "/api/v1/incidents?town=velikiye-luki&lang=en")["incidents"]
    assert active, "the demo database built now should have an active outage in Velikiye Luki"
    page = open_page("/", size="phone")
    banner = page.locator("#status-banner")
    assert "down" in banner.get_attribute("class")
    # Folded to one line; it opens on demand.
    banner.locator("summary").click()
    assert "Velikiye Luki" in banner.inner_text()
    with page.expect_navigation():
        banner.get_by_role("link", name=active[0]["title"]).first.click()
    assert page.url.endswith(f"/incidents/{active[0]['id']}")
    assert "Ongoing for" in page.locator("#incident-status").inner_text()
    # The banner sits above the page's content on every page, phone included.
    assert banner.bounding_box()["y"] < page.get_by_role("heading", level=1).bounding_box()["y"]


def test_language_from_header_switchable_and_remembered(open_page):
    page = open_page("/towns/pechory", lang="ru")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.get_by_role("heading", level=1).inner_text() == "Печоры"
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text() == "Pechory"
    # The next page, reached by a plain link without ?lang=, stays English although the browser asks for Russian.
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Towns").click()
    assert "lang=" not in page.url
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text() == "Coverage by town"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies.get("lang") == "en"


def test_numbers_dates_and_names_are_localised(open_page):
    en = open_page("/towns?sort=population")
    ru = open_page("/towns?sort=population", lang="ru")
    en_first = en.locator("#towns-table tbody tr").first.inner_text()
    ru_first = ru.locator("#towns-table tbody tr").first.inner_text()
    assert "Pskov" in en_first and re.search(r"\d{3},\d{3}", en_first)
    assert "Псков" in ru_first and re.search(r"\d{3}\u00a0\d{3}", ru_first)
    en = open_page("/incidents")
    ru = open_page("/incidents", lang="ru")
    # English dates read day month year, never a numeric 12/7/26 that a reader may take either way.
    assert re.search(r"\b\d{1,2} [A-Z][a-z]{2} 20\d\d\b", en.locator("#ongoing").inner_text())
    assert re.search(r"\d{1,2} (янв|февр|мар|апр|мая|июн|июл|авг|сент|окт|нояб|дек)\. 20\d\d\sг\.",
                     ru.locator("#ongoing").inner_text())
    # Russian needs the dative after "к" in the nearest-coverage sentence; whole metres, grouped.
    ru = open_page("/check?lat=57.79&lon=27.56", lang="ru")
    nearest = ru.locator("#verdict-fiber").inner_text()
    assert re.search(r"Оптика: \d{1,3}(\u00a0\d{3})* м к (северу|югу|востоку|западу|северо-востоку|"
                     r"северо-западу|юго-востоку|юго-западу) от вас", nearest), nearest


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_without_javascript_the_answers_are_in_the_text(open_page, lang):
    words = {
        "en": {"find": "Find", "check": "Check", "verdict": "Yes: fiber covers", "figure": "Map of coverage in Pechory",
               "now": "Now", "home_figure": "Map of the region"},
        "ru": {"find": "Найти", "check": "Проверить", "verdict": "Да: оптика покрывает", "figure": "Карта покрытия",
               "now": "Сейчас", "home_figure": "Карта области"},
    }[lang]
    page = open_page("/", lang=lang, js=False)
    assert page.locator("#status-banner").is_visible()
    assert page.get_by_role("figure", name=re.compile(words["home_figure"])).count() == 1
    # The search form submits on its own: a typo still reaches the town's page.
    page.locator("#town-q").fill("Pechori" if lang == "en" else "Печеры")
    with page.expect_navigation():
        page.get_by_role("button", name=words["find"]).click()
    assert page.url.endswith("/towns/pechory") or page.locator("ol.results a[href='/towns/pechory']").count() == 1
    if not page.url.endswith("/towns/pechory"):
        with page.expect_navigation():
            page.locator("ol.results a[href='/towns/pechory']").click()
    assert page.locator("#verdict").inner_text().startswith(words["verdict"])
    assert page.locator("table.data").first.locator("tbody tr").count() >= 1
    # The map says what it is: its figure is named by its caption, which points at the same facts in words.
    assert page.get_by_role("figure", name=re.compile(words["figure"])).count() == 1
    # The point check form works too.
    page.locator("#lat").fill("57.8150")
    page.locator("#lon").fill("27.6060")
    with page.expect_navigation():
        page.get_by_role("button", name=words["check"], exact=True).click()
    assert "/check?lat=57.8150&lon=27.6060" in page.url
    assert page.locator("#verdict").inner_text().strip()
    # Incidents and their history are plain HTML.
    page = open_page("/incidents", lang=lang, js=False)
    ongoing = page.locator("#ongoing")
    assert ongoing.get_by_role("heading", name=words["now"]).is_visible()
    assert ongoing.locator("li").count() >= 1
    assert page.locator("#history table tbody tr").count() >= 1
