"""Folium maps built from what the coverage and incident functions return.

Only Leaflet is loaded, from the portal's own static files (folium's default
lists point at four CDNs). folium describes each map; the page carries that
description as a JSON data block that ``static/js/map.js`` draws (no inline
script, see ``portal.web.security``). The block also names Leaflet's files,
which map.js loads only when the map comes near the screen (on a slow
connection: when the visitor asks for the map), so a page's text never waits
for them. Geometry embedded in a page is simplified and rounded; coverage
itself is fetched by the browser from the bbox API, so a page's size does not
grow with the polygon count, and building a page never makes the server
request itself.
"""
from __future__ import annotations

import json

import folium
from branca.element import MacroElement
from flask import url_for
from flask_babel import gettext as _
from folium.map import FitBounds
from folium.utilities import camelize
from jinja2.utils import htmlsafe_json_dumps

from portal.coverage.index import TECH_ORDER

TECH_COLOURS = {"fiber": "#1a7f37", "cable": "#1f5fbf", "dsl": "#b35900", "wireless": "#7a3fb0"}
NO_COVERAGE_COLOUR = "#888888"
INCIDENT_COLOUR = "#c0392b"


class _PortalLayers(MacroElement):
    """The portal's own layers: coverage loaded by bbox, town shapes with labels, click to check.

    Rendered by ``static/js/map.js`` from the map's JSON data block, not by folium's script.
    """

    def __init__(self, options: dict):
        super().__init__()
        self._name = "PortalLayers"
        self.options = options


def _base_map(location, zoom: int, tiles_url: str, attribution: str) -> folium.Map:
    """Return a folium map with the configured tiles and no CDN assets."""
    m = folium.Map(location=location, zoom_start=zoom, tiles=None, prefer_canvas=True,
                   control_scale=True, width="100%", height="100%")
    # Instance attributes: never mutate folium's shared class lists.
    m.default_js = []
    m.default_css = []
    folium.TileLayer(tiles=tiles_url, attr=attribution, name="base", control=False).add_to(m)
    return m


def _camel(options: dict) -> dict:
    """Return folium's snake_case options as the camelCase names Leaflet takes."""
    return {camelize(k): v for k, v in options.items()}


def _map_data(m: folium.Map) -> dict:
    """Return what map.js needs to draw the map: folium's map, tiles, bounds, marker and our layers.

    The same description folium would write as an inline script, as data: a page with no
    inline script passes a Content-Security-Policy without 'unsafe-inline', and the same
    page (cached by nginx) is right for every visitor.
    """
    data: dict = {"center": list(m.location), "options": _camel(m.options), "scale": bool(m.control_scale),
                  "tiles": [], "markers": [], "bounds": None, "layers": None,
                  "leaflet": {"js": url_for("vendor", package="leaflet", filename="leaflet.js"),
                              "css": url_for("vendor", package="leaflet", filename="leaflet.css")},
                  "text": {"show": _("Show the map")}}
    for child in m._children.values():
        if isinstance(child, folium.TileLayer):
            data["tiles"].append({"url": child.tiles, "options": _camel(child.options)})
        elif isinstance(child, FitBounds):
            data["bounds"] = child.bounds
        elif isinstance(child, folium.Marker):
            tips = [c.text for c in child._children.values() if isinstance(c, folium.Tooltip)]
            data["markers"].append({"location": list(child.location), "tooltip": tips[0] if tips else None})
        elif isinstance(child, _PortalLayers):
            data["layers"] = child.options
    return data


def _parts(m: folium.Map) -> dict:
    """Return the map's element (html), its data as JSON safe inside a script block, and its id."""
    root = m.get_root()
    root.render()
    # Jinja's tojson, but compact and with Cyrillic names as UTF-8 rather than six-byte
    # escapes (a third of the bytes for a region's town list); <, >, & and ' are escaped,
    # so the text cannot end the script block it is written into.
    data = htmlsafe_json_dumps(_map_data(m), dumps=json.dumps, ensure_ascii=False,
                               separators=(",", ":"), sort_keys=True)
    return {"html": root.html.render(), "data": data, "id": m.get_name()}


def coverage_map(bounds, *, tiles_url: str, attribution: str, coverage_url: str | None,
                 check_url: str | None, towns=(), incidents=(), marker=None, demand_url: str | None = None,
                 demand_label: str = "Households that asked for fiber") -> dict:
    """Return the parts of a map fitted to ``bounds`` (minlon, minlat, maxlon, maxlat).

    ``towns`` are dicts with geometry, label, colour and optionally url,
    permanent (label always shown) and population (where labels would overlap, the
    bigger town's is shown); coverage, and with ``demand_url`` the households that asked
    for fiber per public cell, are fetched by the browser.
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
        "demandUrl": demand_url,
        "demandLabel": demand_label,
        "demandColour": DEMAND_COLOUR,
    }).add_to(m)
    return _parts(m)


DEMAND_COLOUR = "#7b3294"


def town_colour(best: str | None) -> str:
    """Return the map colour of a town by its best technology."""
    return TECH_COLOURS.get(best, NO_COVERAGE_COLOUR)


def legend(labels: dict[str, str]) -> list[dict]:
    """Return legend entries (colour, pattern, text) in technology order."""
    return [{"technology": t, "colour": TECH_COLOURS[t], "label": labels[t]} for t in TECH_ORDER]
