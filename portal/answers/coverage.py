"""Coverage areas as GeoJSON, for the maps and the JSON API."""
from __future__ import annotations

import json

import shapely

from portal.coverage.snapshot import Snapshot
from portal.limits import UNLIMITED, Budget, TooLarge

# Bytes of GeoJSON per coordinate pair, about (two numbers, brackets, commas): for an early estimate.
_BYTES_PER_COORD = 24
# Features between two checks of the budget.
_CHECK_EVERY = 200


def coverage_geojson(snap: Snapshot, bbox, tolerance_m: float | None = None, *, budget: Budget = UNLIMITED,
                     max_features: int | None = None, max_bytes: int | None = None) -> dict:
    """Return coverage areas (optionally within a bbox, simplified) as a FeatureCollection.

    ``tolerance_m`` snaps to the map's ladder of tolerances. More than ``max_features`` areas, or an
    answer estimated over ``max_bytes``, raise ``TooLarge`` naming the bbox; ``budget`` is checked
    in the loops (``OverBudget``).
    """
    features = []
    size = 0
    areas = snap.coverage.areas_in_bbox(bbox, tolerance_m=tolerance_m, budget=budget, max_areas=max_features)
    for n, area in enumerate(areas):
        if n % _CHECK_EVERY == 0:
            budget.check()
        size += 200 + _BYTES_PER_COORD * int(shapely.get_num_coordinates(area.geometry))
        if max_bytes is not None and size > max_bytes:
            raise _too_large(max_bytes)
        features.append({
            "type": "Feature",
            "properties": {
                "technology": area.technology,
                "status": area.status,
                "max_down_mbps": area.max_down_mbps,
                "max_up_mbps": area.max_up_mbps,
                "available_from": area.available_from,
            },
            "geometry": shapely.geometry.mapping(area.geometry),
        })
    return {"type": "FeatureCollection", "features": features}


def coverage_geojson_text(snap: Snapshot, bbox, tolerance_m: float | None = None, *,
                          budget: Budget = UNLIMITED, max_features: int | None = None,
                          max_bytes: int | None = None) -> str:
    """Return ``coverage_geojson`` serialised, refusing (``TooLarge``) a text over ``max_bytes``."""
    found = coverage_geojson(snap, bbox, tolerance_m, budget=budget, max_features=max_features,
                             max_bytes=max_bytes)
    budget.check()
    text = dumps_geojson(found)
    if max_bytes is not None and len(text.encode()) > max_bytes:
        raise _too_large(max_bytes)
    return text


def _too_large(max_bytes: int) -> TooLarge:
    """Return the refusal of an answer over ``max_bytes``."""
    return TooLarge("bbox", f"the coverage in this bbox would be more than {max_bytes / 1e6:g} MB;"
                            " narrow the bbox, or give a larger simplify")


def dumps_geojson(obj: dict) -> str:
    """Serialise GeoJSON compactly."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
