"""The answer for this place is on the first screen, phone and desktop, Russian and English, tiles down.

The server's tile URL points at a port that answers nothing (conftest), as on a bad connection.
"""
from __future__ import annotations

import pytest
from pagecheck import SIZES

from tests.village import EN, RU, village

SENTENCE = {"en": EN, "ru": RU}


def _assert_on_first_screen(page, size: str, *selectors: str) -> None:
    """Assert that each element starts within the first screen's height, without scrolling."""
    height = SIZES[size]["height"]
    assert page.evaluate("window.scrollY") == 0
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not shown"
        assert box["y"] < height, f"{selector} starts at {box['y']:.0f} px, below the first {height} px"


def _assert_banner_is_one_line(page) -> None:
    """Assert that the folded banner takes one line of text, and opens on demand."""
    summary = page.locator("#status-banner-summary")
    line = summary.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert summary.bounding_box()["height"] < 1.6 * line, "the banner's summary wraps"
    assert page.locator("#status-banner").bounding_box()["height"] < 2.5 * line
    details = page.locator("#status-banner details")
    assert details.evaluate("d => d.open") is False
    summary.click()
    assert details.evaluate("d => d.open") is True
    assert page.locator("#status-banner ul.banner-services").is_visible()


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_town_page_verdict_and_down_here_on_the_first_screen(open_page, size, lang):
    # Velikiye Luki has an outage right now: "is it down here?" answers yes, with the incident.
    page = open_page("/towns/velikiye-luki", size=size, lang=lang)
    _assert_on_first_screen(page, size, "#verdict", "#place-status-heading", "#place-verdict")
    assert page.locator("#place-verdict").inner_text().startswith("Yes:" if lang == "en" else "Да:")
    _assert_banner_is_one_line(page)


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_village_point_answer_on_the_first_screen(open_page, size, lang):
    v = village()
    page = open_page(f"/check?lat={v['lat']}&lon={v['lon']}", size=size, lang=lang)
    _assert_on_first_screen(page, size, "#verdict", "#place-status-heading", "#place-verdict")
    assert page.locator("#verdict").inner_text().strip() == SENTENCE[lang] + "."
    # Every technology follows, the nearest useful first; the map is below the answer.
    items = page.locator("#verdicts li").all_inner_texts()
    assert len(items) == 4 and items[0].strip() == SENTENCE[lang] + "."
    assert page.locator("#place-verdict").bounding_box()["y"] < page.locator("figure.map").bounding_box()["y"]
    _assert_banner_is_one_line(page)
