"""The village 1 km outside Pechory, found in the shipped shapes, and what its answer must say.

Pechory's live fiber (``geodata/coverage.geojson``) ends in the east at a vertex V that lies on
the town's extent. A point P 1,003 m due east of V (a geodesic leaving V at azimuth 90°) is
1,003 m from that fiber: the geodesic leaving V eastwards crosses V's meridian at a right angle, so
no point west of that meridian is nearer to P than V, and every vertex of Pechory's fiber is west
of it (checked below, as is the exact distance to every live fiber polygon, measured on a plane
centred at P, where distances from P are those on the ground).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import shape

GEODATA = Path(__file__).resolve().parents[1] / "geodata"
GEOD = pyproj.Geod(ellps="WGS84")
DISTANCE_M = 1003


def _features(name: str) -> list[dict]:
    """Return the features of a shipped GeoJSON file."""
    return json.loads((GEODATA / name).read_text(encoding="utf-8"))["features"]


@lru_cache(maxsize=1)
def village() -> dict:
    """Return the point P (lat, lon, rounded to 6 decimals as a visitor's URL has it) and its facts."""
    fiber = [shape(f["geometry"]) for f in _features("coverage.geojson")
             if f["properties"]["technology"] == "fiber" and f["properties"]["status"] == "live"]
    towns = {f["properties"]["slug"]: shape(f["geometry"]) for f in _features("towns.geojson")}
    pechory_fiber = [g for g in fiber if g.intersects(towns["pechory"])]
    xy = shapely.get_coordinates(pechory_fiber)
    vlon, vlat = xy[int(np.argmax(xy[:, 0]))]
    assert towns["pechory"].intersects(shapely.Point(vlon, vlat).buffer(1e-7)), "V lies on Pechory's extent"
    lon, lat, _ = GEOD.fwd(vlon, vlat, 90, DISTANCE_M)
    lat, lon = round(lat, 6), round(lon, 6)
    # Measured again from the rounded point, on a plane centred there: every live fiber polygon.
    plane = pyproj.Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m", always_xy=True)
    nearest = min(shapely.transform(g, lambda c: np.column_stack(plane.transform(c[:, 0], c[:, 1])))
                  .distance(shapely.Point(0, 0)) for g in fiber)
    assert round(nearest) == DISTANCE_M, nearest
    assert not any(g.intersects(shapely.Point(lon, lat)) for g in towns.values()), "outside every town"
    return {"lat": lat, "lon": lon, "distance_m": DISTANCE_M, "direction": "W", "town": "pechory"}


EN = "Fiber: 1,003 m west of you, beyond a standard drop, network extension needed; nearest town Pechory"
RU = ("Оптика: 1\u00a0003 м к западу от вас, дальше стандартного подключения, нужно расширение сети;"
      " ближайший населённый пункт — Печоры")
