"""Screenshots of the main pages at desktop and phone sizes (SCREENSHOT_DIR, default tests/screenshots/).

``SCREENSHOT_DIR=docs/screenshots pytest tests/browser/test_screenshots.py`` refreshes the README's images.
"""
from __future__ import annotations

import pytest
from pagecheck import SCREENSHOT_DIR, wait_for_map, wait_for_paint

PAGES = {
    "home": ("/", False),
    "town": ("/towns/pechory", True),
    "check": ("/check?lat=57.8150&lon=27.6060", True),
    "village": ("/check?lat=57.818659&lon=27.6517", True),  # 1 km outside Pechory: extension needed
    "incidents": ("/incidents", None),
}


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("name", list(PAGES))
def test_screenshot(open_page, name, size):
    path, coverage = PAGES[name]
    page = open_page(path, size=size)
    if coverage is not None:
        wait_for_map(page, coverage=coverage)
        wait_for_paint(page, 200)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / f"{name}-{size}.png"
    # The first screen, as a visitor sees it: the answer and the banner must be there without scrolling.
    page.screenshot(path=str(target), animations="disabled", caret="hide")
    assert target.stat().st_size > 5_000
