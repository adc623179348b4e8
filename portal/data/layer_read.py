"""Read a towns or coverage layer from a GIS file: map, reproject, repair, validate; report every feature.

``read_layer`` turns a file into ``layers.Town`` / ``layers.Area`` records and a report, without
touching any database; ``imports.import_layer`` compares them with the live layer and stores them.
"""
from __future__ import annotations

import math
import re
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import shapely
from tqdm import tqdm

from portal.coverage.places import slugify
from portal.data import layers
from portal.data.gisfiles import (
    alt_names_cell,
    cell_fid,
    coordinate_cell,
    date_cell,
    load_mapping,
    number_cell,
    open_file,
    text_cell,
)
from portal.data.layers import Area, Town
from portal.data.text import BadText, check_text

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POLYGONAL = ("Polygon", "MultiPolygon")
REGION_MARGIN_KM = 10.0  # coverage may reach a little past the outermost town's extent


@dataclass
class LayerRead:
    """What a file yields: the usable features (WGS 84) and the report about all of them."""

    features: list
    report: dict

    @property
    def refused(self) -> list[dict]:
        """Return the refused features (each ``{"id", "reason"}``)."""
        return self.report["refused"]


def _progress(iterable, total: int, desc: str, enabled: bool):
    """Wrap an iterable in a tqdm bar on stderr when asked (or when stderr is a terminal)."""
    return tqdm(iterable, total=total, desc=desc, unit="feat", file=sys.stderr,
                disable=not enabled, leave=False, mininterval=0.25)


def want_progress(progress: bool | None) -> bool:
    """Show bars when asked explicitly, else only on an interactive stderr."""
    return progress if progress is not None else sys.stderr.isatty()


# --- geometry -----------------------------------------------------------------------------


def _polygonal_only(geom):
    """Return the polygonal part of a geometry as a Polygon/MultiPolygon, or None."""
    if geom is None or geom.is_empty:
        return None
    kind = geom.geom_type
    if kind in POLYGONAL:
        return geom
    if kind == "GeometryCollection":
        parts = [p for p in shapely.get_parts(geom) if p.geom_type in POLYGONAL]
        parts = [q for p in parts for q in shapely.get_parts(p)]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return None


def _prepare_geometries(geoms: np.ndarray, labels: list[str], report: dict) -> list:
    """Drop Z, repair invalid polygons with make_valid; return geometry or a refusal text."""
    out: list = [None] * len(geoms)
    present = ~shapely.is_missing(geoms)
    present[present] = ~shapely.is_empty(geoms[present])
    geoms2 = geoms.copy()
    if present.any() and shapely.has_z(geoms[present]).any():
        geoms2[present] = shapely.force_2d(geoms[present])
    valid = np.zeros(len(geoms), dtype=bool)
    valid[present] = shapely.is_valid(geoms2[present])
    for i in range(len(geoms)):
        if not present[i]:
            out[i] = "no geometry"
            continue
        g = geoms2[i]
        if g.geom_type not in POLYGONAL + ("GeometryCollection",):
            out[i] = f"{g.geom_type} geometry (a coverage area or town extent must be a polygon)"
            continue
        if not valid[i]:
            reason = shapely.is_valid_reason(g)
            g = _polygonal_only(shapely.make_valid(g))
            if g is None or g.area == 0:
                out[i] = f"invalid polygon with no area left after repair ({reason})"
                continue
            report["repaired"].append({"id": labels[i], "problem": reason})
        else:
            g = _polygonal_only(g)
            if g is None:
                out[i] = "geometry collection with no polygon in it"
                continue
        if not np.isfinite(shapely.bounds(g)).all():
            out[i] = "coordinates could not be transformed to WGS 84"
            continue
        out[i] = g
    return out


def _labels(frame, kind: str) -> list[str]:
    """Return how the report names each feature: its row number plus its id or slug/name."""
    key = "feature_id" if kind == "coverage" else "slug"
    names = frame["name"] if kind == "towns" else frame[key]
    labels = []
    for n, (ident, name) in enumerate(zip(frame[key], names), start=1):
        shown = cell_fid(ident) or text_cell(name)
        labels.append(f"#{n} ({shown})" if shown else f"#{n}")
    return labels


# --- per-kind validation ------------------------------------------------------------------


def _clean_cell(value, field: str):
    """Return (text with tabs and line breaks as spaces, problems): a control character is a problem."""
    if value is None:
        return None, []
    try:
        return check_text(field, str(value)) or None, []
    except BadText as exc:
        return None, [str(exc)]


def _coverage_feature(row, geom):
    """Return (Area, problems, notes) for one row."""
    problems, notes = [], []
    tech = text_cell(row["technology"])
    tech = tech.lower() if tech else tech
    if tech not in layers.TECHNOLOGIES:
        problems.append(f"unknown technology {row['technology']!r} (expected one of"
                        f" {', '.join(layers.TECHNOLOGIES)}, or map it under \"values\")")
    status = text_cell(row["status"])
    status = status.lower() if status else status
    if status not in layers.COVERAGE_STATUSES:
        problems.append(f"unknown status {row['status']!r} (expected one of"
                        f" {', '.join(layers.COVERAGE_STATUSES)}, or map it under \"values\")")
    down, p1 = number_cell(row["max_down_mbps"], "max_down_mbps")
    up, p2 = number_cell(row["max_up_mbps"], "max_up_mbps")
    when, p3 = date_cell(row["available_from"], "available_from")
    problems += [p for p in (p1, p2, p3) if p]
    if status == "planned" and when is None and not p3:
        notes.append("planned without an available_from date")
    if status == "live" and when is not None:
        notes.append(f"live with available_from {when}: date dropped")
        when = None
    if problems:
        return None, problems, notes
    fid, bad = _clean_cell(cell_fid(row["feature_id"]), "feature_id")
    if bad:
        return None, bad, notes
    return Area(technology=tech, status=status, geometry=geom, max_down_mbps=down,
                max_up_mbps=up, available_from=when, feature_id=fid), [], notes


def _town_feature(row, geom):
    """Return (Town, problems, notes) for one row."""
    problems, notes = [], []
    name, name_bad = _clean_cell(text_cell(row["name"]), "name")
    problems += name_bad
    name_ru, bad = _clean_cell(text_cell(row["name_ru"]), "name_ru")
    problems += bad
    alt_names = []
    for alt in alt_names_cell(row["alt_names"]):
        alt, bad = _clean_cell(alt, "alt_names")
        problems += bad
        alt_names.append(alt)
    if not name and not name_bad:
        problems.append("no name")
    slug = text_cell(row["slug"]) or (slugify(name) if name else None)
    if name and not slug:
        problems.append(f"name {name!r} gives an empty slug; give a slug column")
    elif slug and not SLUG_RE.match(slug):
        problems.append(f"slug {slug!r} is not lowercase ASCII words joined by '-'")
    population, p = number_cell(row["population"], "population")
    if p:
        problems.append(p)
    elif population is not None and not float(population).is_integer():
        problems.append(f"population {row['population']!r} is not a whole number")
    lat, p_lat = coordinate_cell(row["lat"], "lat", 90)
    lon, p_lon = coordinate_cell(row["lon"], "lon", 180)
    problems += [p for p in (p_lat, p_lon) if p]
    if problems:
        return None, problems, notes
    if lat is None or lon is None:
        point = shapely.point_on_surface(geom)
        lat, lon = point.y, point.x
    return Town(slug=slug, name=name, name_ru=name_ru,
                population=int(population) if population is not None else None,
                lat=float(lat), lon=float(lon), geometry=geom,
                alt_names=tuple(a for a in alt_names if a)), [], notes


def _region_box(region, margin_km: float = REGION_MARGIN_KM):
    """Return the region bounds widened by a margin in kilometres, as a shapely box."""
    minx, miny, maxx, maxy = region
    dlat = margin_km / 111.32
    dlon = margin_km / (111.32 * max(math.cos(math.radians((miny + maxy) / 2)), 0.01))
    return shapely.box(minx - dlon, miny - dlat, maxx + dlon, maxy + dlat)


def read_layer(path, kind: str, mapping=None, *, region=None, progress: bool | None = False,
               ) -> LayerRead:
    """Read, map, reproject, repair and validate a file; return usable features and the report.

    ``region`` (minlon, minlat, maxlon, maxlat) refuses coverage features lying wholly
    outside it (widened by REGION_MARGIN_KM); None skips that check.
    """
    if kind not in layers.KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {', '.join(layers.KINDS)}")
    mapping = load_mapping(mapping, kind)
    opened = open_file(path, kind, mapping)
    frame = opened.frame
    report = {
        "kind": kind, **opened.info, "mapping": mapping.source,
        "features_read": len(frame), "features_accepted": 0,
        "repaired": [], "refused": [], "outside_region": [], "notes": [],
        "region": list(region) if region is not None else None,
    }
    labels = _labels(frame, kind)
    geoms = _prepare_geometries(np.asarray(frame.geometry.values, dtype=object), labels, report)
    outside = np.zeros(len(geoms), dtype=bool)
    if region is not None and kind == "coverage":
        usable = np.array([None if isinstance(g, str) else g for g in geoms], dtype=object)
        outside = ~shapely.intersects(_region_box(region), usable) & ~shapely.is_missing(usable)
    make = _coverage_feature if kind == "coverage" else _town_feature
    features, seen = [], {}
    rows = frame.drop(columns=frame.geometry.name).to_dict("records")
    for i, row in enumerate(_progress(rows, len(rows), "checking", bool(progress))):
        geom = geoms[i]
        problems = [geom] if isinstance(geom, str) else []
        feature, more, notes = make(row, geom) if not problems else (None, [], [])
        problems += more
        if outside[i]:
            problems.append("wholly outside the region (the live towns' extent plus"
                            f" {REGION_MARGIN_KM:g} km); a wrong CRS in the file?")
            report["outside_region"].append(labels[i])
        key = (feature.feature_id if kind == "coverage" else feature.slug) if feature else None
        if key is not None and key in seen:
            problems.append(f"duplicate {'feature_id' if kind == 'coverage' else 'slug'} {key!r}"
                            f" (first at {labels[seen[key]]})")
        if problems:
            report["refused"].append({"id": labels[i], "reason": "; ".join(problems)})
            continue
        if key is not None:
            seen[key] = i
        report["notes"] += [f"{labels[i]}: {n}" for n in notes]
        features.append(feature)
    report["features_accepted"] = len(features)
    report["counts"] = _counts(features, kind)
    if kind == "towns" and features:
        report["region"] = [round(v, 6) for v in
                            shapely.total_bounds([f.geometry for f in features]).tolist()]
    return LayerRead(features, report)


def _counts(features: list, kind: str) -> dict:
    """Return accepted features by technology and status (coverage) or the total (towns)."""
    if kind == "towns":
        return {"towns": len(features)}
    counts: dict = {}
    for (tech, status), n in sorted(Counter((a.technology, a.status) for a in features).items()):
        counts.setdefault(tech, {})[status] = n
    return counts
