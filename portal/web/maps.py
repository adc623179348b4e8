"""Folium maps built from what the coverage and incident functions return.

Only Leaflet is loaded, from the portal's own static files (folium's default
lists point at four CDNs). Geometry embedded in a page is simplified and
rounded; coverage itself is fetched by the browser from the bbox API, so a
page's size does not grow with the polygon count, and building a page never
makes the server request itself.
"""
from __future__ import annotations

import json

import folium
from branca.element import MacroElement
from jinja2 import Template
from jinja2.utils import htmlsafe_json_dumps

from portal.coverage.index import TECH_ORDER

TECH_COLOURS = {"fiber": "#1a7f37", "cable": "#1f5fbf", "dsl": "#b35900", "wireless": "#7a3fb0"}
NO_COVERAGE_COLOUR = "#888888"
INCIDENT_COLOUR = "#c0392b"


class _PortalLayers(MacroElement):
    """Script that loads coverage by bbox, labels, and a click-to-check handler."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.PortalMaps && PortalMaps.attach({{ this._parent.get_name() }}, {{ this.options_json }});
        {% endmacro %}
        """
    )

    def __init__(self, options: dict):
        super().__init__()
        self._name = "PortalLayers"
        self.options = options
        # Jinja's tojson, but compact and with Cyrillic names as UTF-8 rather than six-byte
        # escapes (a third of the bytes for a region's town list).
        self.options_json = htmlsafe_json_dumps(options, dumps=json.dumps, ensure_ascii=False,
                                                separators=(",", ":"), sort_keys=True)


def _base_map(location, zoom: int, tiles_url: str, attribution: str) -> folium.Map:
    """Return a folium map with the configured tiles and no CDN assets."""
    m = folium.Map(location=location, zoom_start=zoom, tiles=None, prefer_canvas=True,
                   control_scale=True, width="100%", height="100%")
    # Instance attributes: never mutate folium's shared class lists.
    m.default_js = []
    m.default_css = []
    folium.TileLayer(tiles=tiles_url, attr=attribution, name="base", control=False).add_to(m)
    return m


def _parts(m: folium.Map) -> dict:
    """Return the html and script parts of a rendered map for our own templates."""
    root = m.get_root()
    root.render()
    return {"html": root.html.render(), "script": root.script.render(), "id": m.get_name()}


def coverage_map(bounds, *, tiles_url: str, attribution: str, coverage_url: str | None,
                 check_url: str | None, towns=(), incidents=(), marker=None) -> dict:
    """Return the parts of a map fitted to ``bounds`` (minlon, minlat, maxlon, maxlat).

    ``towns`` are dicts with geometry, label, colour and optionally url and
    permanent (label always shown); coverage is fetched by the browser.
    """
    minlon, minlat, maxlon, maxlat = bounds
    m = _base_map([(minlat + maxlat) / 2, (minlon + maxlon) / 2], 13, tiles_url, attribution)
    m.fit_bounds([[minlat, minlon], [maxlat, maxlon]])
    if marker is not None:
        folium.Marker(location=list(marker["location"]), tooltip=marker.get("label")).add_to(m)
    _PortalLayers({
        "coverageUrl": coverage_url,
        "checkUrl": check_url,
        "colours": TECH_COLOURS,
        "towns": list(towns),
        "incidents": list(incidents),
        "incidentColour": INCIDENT_COLOUR,
    }).add_to(m)
    return _parts(m)


def town_colour(best: str | None) -> str:
    """Return the map colour of a town by its best technology."""
    return TECH_COLOURS.get(best, NO_COVERAGE_COLOUR)


def legend(labels: dict[str, str]) -> list[dict]:
    """Return legend entries (colour, pattern, text) in technology order."""
    return [{"technology": t, "colour": TECH_COLOURS[t], "label": labels[t]} for t in TECH_ORDER]
