"""Helpers the browser tests share: page sizes, axe-core, waiting for the map."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "tests" / "screenshots")
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}

# Counts the map canvas's painted pixels: with the canvas renderer the drawn shapes leave no DOM nodes.
PAINTED_PIXELS = """() => {
  let painted = 0;
  for (const canvas of document.querySelectorAll('.leaflet-overlay-pane canvas')) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { painted++; } }
  }
  return painted;
}"""


def run_axe(page) -> list[dict]:
    """Inject axe-core into the page and return its serious and critical violations."""
    if not AXE.exists():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run `make browser` (npm ci).", pytrace=False)
    # Evaluated, not added as a <script> element: the page's Content-Security-Policy (rightly)
    # refuses inline scripts, and bypassing it would hide a violation from the other checks.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    # Only violations are wanted: skipping the details of passes makes a run several times faster.
    # WCAG 2.2's target size (24 px, or enough space around) is off in axe by default: turned on.
    result = page.evaluate("axe.run(document, {resultTypes: ['violations'],"
                           " rules: {'target-size': {enabled: true}}})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


def wait_for_map(page, coverage: bool = True) -> None:
    """Scroll to the map as a reader would, wait until map.js has drawn the town shapes and, where the
    map has it, the coverage, then go back to the top of the page.

    map.js loads Leaflet only when a map comes near the screen, so a map below the answer is drawn
    once the reader scrolls towards it.
    """
    page.locator(".folium-map").first.scroll_into_view_if_needed()
    page.wait_for_selector(".folium-map[data-town-shapes]", state="attached")
    if coverage:
        page.wait_for_selector(".folium-map[data-coverage-features]", state="attached")
    page.evaluate("window.scrollTo(0, 0)")


def wait_for_paint(page, pixels: int = 1000) -> None:
    """Wait until the map's canvas has at least ``pixels`` painted pixels."""
    page.wait_for_function(f"({PAINTED_PIXELS})() >= {pixels}")
