"""Maps that read on a phone and never hold the text up: Leaflet only when a map is near, a button on a
slow connection, labels that do not cover each other, a metric scale, "use my location", base tiles
from a local tile server, and every answer in words with the tile server unreachable."""
from __future__ import annotations

import re

import pytest
from pagecheck import wait_for_map

LEAFLET_REQUESTS = ("performance.getEntriesByType('resource')"
                    ".filter(e => /leaflet\\.(js|css)/.test(e.name)).length")
SAVE_DATA = """Object.defineProperty(navigator, 'connection', {
  configurable: true, get: () => ({saveData: true, effectiveType: '4g', addEventListener() {}})
});"""
VISIBLE_LABELS = """() => Array.from(document.querySelectorAll('.leaflet-tooltip.town-label'))
  .filter(e => getComputedStyle(e).visibility !== 'hidden')
  .map(e => { const r = e.getBoundingClientRect();
              return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })"""


def _overlaps(labels: list[dict]) -> list[tuple[str, str]]:
    """Return the pairs of label boxes that overlap."""
    return [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1:]
            if a["left"] < b["right"] and b["left"] < a["right"]
            and a["top"] < b["bottom"] and b["top"] < a["bottom"]]


def test_on_a_phone_leaflet_loads_only_when_the_reader_nears_the_map(open_page):
    page = open_page("/towns/pechory", size="phone")
    # The answer is on the first screen; the map, below it, has cost nothing yet.
    assert page.locator("#verdict").is_visible()
    assert page.evaluate(LEAFLET_REQUESTS) == 0
    assert page.locator(".folium-map[data-drawn]").count() == 0
    wait_for_map(page)
    assert page.evaluate(LEAFLET_REQUESTS) == 2
    assert page.locator(".leaflet-pane").count() > 0


@pytest.mark.parametrize("lang,label", [("en", "Show the map"), ("ru", "Показать карту")])
def test_when_the_browser_asks_to_save_data_the_map_waits_for_a_tap(open_page, lang, label):
    page = open_page("about:blank", size="phone", lang=lang)
    page.add_init_script(SAVE_DATA)
    page.goto("/towns/pechory")
    button = page.get_by_role("button", name=label)
    button.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    # Scrolled to the map, still nothing downloaded: only the reader's tap loads it.
    assert page.evaluate(LEAFLET_REQUESTS) == 0
    button.click()
    page.wait_for_selector(".folium-map[data-coverage-features]", state="attached")
    assert page.evaluate(LEAFLET_REQUESTS) == 2
    assert button.count() == 0


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_region_map_labels_never_cover_each_other_and_part_when_zoomed_in(open_page, size):
    page = open_page("/", size=size)
    wait_for_map(page, coverage=False)
    frame = page.locator(".folium-map")
    frame.scroll_into_view_if_needed()
    labels = page.evaluate(VISIBLE_LABELS)
    assert any(label["text"] == "Pskov" for label in labels)
    assert not _overlaps(labels), _overlaps(labels)
    shown = int(frame.get_attribute("data-labels-shown"))
    # Zoomed in, towns part: labels hidden at the region's zoom come back, still without overlapping.
    frame.focus()
    for _ in range(2):
        page.keyboard.press("+")
        page.wait_for_timeout(400)
    page.wait_for_function(f"+document.querySelector('.folium-map').dataset.labelsShown > {shown}")
    page.wait_for_timeout(300)  # the last zoom's labels in place
    labels = page.evaluate(VISIBLE_LABELS)
    assert not _overlaps(labels), _overlaps(labels)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_scale_bar_is_metric_only(open_page, lang):
    page = open_page("/towns/pechory", lang=lang)
    wait_for_map(page)
    scale = page.locator(".leaflet-control-scale-line")
    assert scale.count() == 1
    assert re.fullmatch(r"\d+ (m|km)", scale.inner_text().strip()), scale.inner_text()


@pytest.mark.parametrize("lang,words", [
    ("en", ("Use my location", "What reaches 57.81500, 27.60600")),
    ("ru", ("Моё местоположение", "Что доступно в точке 57.81500, 27.60600")),
])
def test_use_my_location_goes_to_the_answer_for_where_the_reader_stands(open_page, lang, words):
    where = {"latitude": 57.815, "longitude": 27.606}
    page = open_page("/", size="phone", lang=lang, geolocation=where, permissions=["geolocation"])
    with page.expect_navigation(url=re.compile(r"/check\?lat=57\.815000&lon=27\.606000")):
        page.get_by_role("button", name=words[0], exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text() == words[1]
    assert page.locator("#verdict").inner_text().strip()


def test_use_my_location_refused_says_what_to_do_instead(open_page):
    page = open_page("/", size="phone")  # no permission granted: the browser refuses
    page.get_by_role("button", name="Use my location", exact=True).click()
    status = page.locator("form.check [role=status]")
    status.filter(has_text="not shared").wait_for()
    assert page.url.endswith("/")
    assert page.get_by_role("button", name="Use my location", exact=True).is_enabled()


def test_without_javascript_there_is_no_dead_location_button(open_page):
    page = open_page("/", size="phone", js=False)
    assert page.get_by_role("button", name="Use my location", exact=True).count() == 0
    assert page.get_by_role("button", name="Check", exact=True).is_visible()


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_point_form_reads_on_a_phone(open_page, lang):
    page = open_page("/", size="phone", lang=lang)
    lat, lon = page.locator("#lat").bounding_box(), page.locator("#lon").bounding_box()
    # The two fields side by side, wide enough for "57.815000", each under its own label.
    assert abs(lat["y"] - lon["y"]) < 1 and lat["width"] >= 120 and lon["width"] >= 120
    assert lon["x"] + lon["width"] <= 360
    for field in ("lat", "lon"):
        label = page.locator(f"label[for={field}]").bounding_box()
        box = page.locator(f"#{field}").bounding_box()
        assert label["y"] + label["height"] <= box["y"] + 1 and abs(label["x"] - box["x"]) < 1
    for button in page.locator("form.check button:visible").all():
        size = button.bounding_box()
        assert size["height"] >= 24 and size["width"] >= 24


def test_map_shows_tiles_from_the_local_tile_server(open_tiled_page, tile_server):
    page = open_tiled_page("/towns/pechory")
    wait_for_map(page)
    page.locator(".folium-map").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('.leaflet-tile-loaded').length >= 4")
    tiles = page.evaluate("""Array.from(document.querySelectorAll('.leaflet-tile-loaded'))
                             .map(t => ({src: t.src, width: t.naturalWidth}))""")
    assert tiles and all(t["width"] == 256 for t in tiles)
    assert all(t["src"].startswith(tile_server.origin + "/tiles/") for t in tiles), tiles
    assert len(tile_server.requests) >= len(tiles)


PAGES_AND_ANSWERS = {
    "/": ("#town-q", "Is there fiber in your town?"),
    "/towns/pechory": ("#verdict", "Yes: fiber covers"),
    "/check?lat=57.8150&lon=27.6060": ("#verdict", ""),
    "/towns": ("#towns-table", "Pskov"),
}


@pytest.mark.parametrize("path", list(PAGES_AND_ANSWERS))
def test_pages_give_their_text_with_the_tile_server_unreachable(open_page, path):
    page = open_page(path, size="phone")
    selector, words = PAGES_AND_ANSWERS[path]
    assert page.locator(selector).first.is_visible()
    assert words in page.locator("main").inner_text()
    # The map still draws the portal's own shapes over an empty base layer.
    wait_for_map(page, coverage=path in ("/towns/pechory", "/check?lat=57.8150&lon=27.6060"))
    assert page.locator(".leaflet-tile-loaded").count() == 0
    assert page.locator("#status-banner").is_visible()
