"""axe-core finds no serious or critical problem; phones get every page without sideways scrolling."""
from __future__ import annotations

import json
import urllib.request

import pytest
from pagecheck import run_axe, wait_for_map

PAGES = {
    "home": "/",
    "towns": "/towns",
    "town": "/towns/pechory",
    "check": "/check?lat=57.8150&lon=27.6060",
    "incidents": "/incidents",
    "incident": None,  # the active outage, found at run time
}


@pytest.fixture(scope="module")
def incident_path(server):
    """Return the page of the demo's active outage in Velikiye Luki."""
    with urllib.request.urlopen(server + "/api/v1/incidents?town=velikiye-luki", timeout=10) as response:
        active = json.load(response)["incidents"]
    assert active, "the demo database built now should have an active outage in Velikiye Luki"
    return f"/incidents/{active[0]['id']}"


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_is_accessible_and_fits(open_page, incident_path, name, lang, size):
    page = open_page(PAGES[name] or incident_path, lang=lang, size=size)
    # Check the page as people get it: the map drawn, its labels and coverage in place.
    if name != "incidents":
        wait_for_map(page, coverage=name in ("town", "check"))
    # Open every disclosure so that axe and the width check see the whole page.
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    violations = run_axe(page)
    assert not violations, json.dumps(violations, ensure_ascii=False, indent=1)
    if size == "phone":
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{name} ({lang}) scrolls sideways on a 360 px screen: {width} px wide"
        # What answers the question comes before the map.
        if name == "incidents":
            return
        map_top = page.locator("figure.map").bounding_box()["y"]
        firsts = {"home": ["#town-q"], "town": ["#verdict"], "check": ["#verdict", "#place-verdict"]}
        for selector in ["#status-banner", *firsts.get(name, [])]:
            assert page.locator(selector).bounding_box()["y"] < map_top, f"{selector} is below the map"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_colour_is_never_the_only_signal(open_page, incident_path, lang):
    page = open_page("/towns/pechory", lang=lang)
    legend = page.locator("ul.legend li")
    # Every swatch of the map legend has its words next to it; planned coverage differs by its dashed outline.
    assert legend.count() >= 6 and all(item.strip() for item in legend.all_inner_texts())
    planned = page.locator("ul.legend .swatch.planned").first
    assert planned.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    # The daily availability strip marks bad days with a symbol as well as a colour, and a table says it in words.
    strip_days = page.locator(".availability .strip li.down")
    if strip_days.count():
        assert strip_days.first.inner_text().strip()
    assert page.locator(".availability .key li").count() == 4
    for text in page.locator(".availability .key li").all_inner_texts():
        assert text.strip()
    # Verdicts say yes or no in words; the coloured border only repeats it.
    assert page.locator("#verdict").inner_text().split(":")[0] in ("Yes", "Да")
    # The folded banner's one line says it in words too ("2 outages now" / "Сейчас 2 аварии").
    banner = open_page(incident_path, lang=lang).locator("#status-banner summary").inner_text()
    assert ("outage" in banner) if lang == "en" else ("авари" in banner)
