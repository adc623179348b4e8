"""Coverage areas as GeoJSON, for the maps and the JSON API."""
from __future__ import annotations

import json

import shapely

from portal.coverage.snapshot import Snapshot


def coverage_geojson(snap: Snapshot, bbox, tolerance_m: float | None = None) -> dict:
    """Return coverage areas (optionally within a bbox, simplified) as a FeatureCollection."""
    features = []
    for area in snap.coverage.areas_in_bbox(bbox, tolerance_m=tolerance_m):
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


def dumps_geojson(obj: dict) -> str:
    """Serialise GeoJSON compactly."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
