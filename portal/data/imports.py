"""Import a towns or coverage layer from a GIS file: validate, repair, report, store.

``read_layer`` turns a file into ``layers.Town`` / ``layers.Area`` records and
a report, without touching any database. ``import_layer`` adds the region
check and the difference from the live layer, then stores the whole layer
in one ``db.writing`` transaction, or nothing (refused file, dry run, crash).
"""
from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from tqdm import tqdm

from portal.coverage.places import slugify
from portal.data import db, layers
from portal.data.gisfiles import (
    BadMapping,
    ImportFailure,
    Mapping,
    UnreadableFile,
    alt_names_cell,
    cell_fid,
    coordinate_cell,
    date_cell,
    file_checksum,
    load_mapping,
    number_cell,
    open_file,
    text_cell,
)
from portal.data.layers import Area, Town

__all__ = [
    "LayerRead", "ImportResult", "FileRefused", "ImportFailure", "UnreadableFile", "BadMapping",
    "Mapping", "load_mapping", "read_layer", "import_layer", "write_layer", "live_region",
]

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POLYGONAL = ("Polygon", "MultiPolygon")
REGION_MARGIN_KM = 10.0  # coverage may reach a little past the outermost town's extent


class FileRefused(ImportFailure):
    """Some features cannot be used; nothing was written. ``.result`` has the report (and diff)."""

    def __init__(self, message: str, result: "ImportResult"):
        super().__init__(message)
        self.result = result


@dataclass
class LayerRead:
    """What a file yields: the usable features (WGS 84) and the report about all of them."""

    features: list
    report: dict

    @property
    def refused(self) -> list[dict]:
        """Return the refused features (each ``{"id", "reason"}``)."""
        return self.report["refused"]


@dataclass
class ImportResult:
    """The outcome of ``import_layer``: report, diff from the live layer, the new layer's id."""

    report: dict
    diff: dict | None = None
    layer_id: int | None = None
    dry_run: bool = False
    replaced_id: int | None = None


def _progress(iterable, total: int, desc: str, enabled: bool):
    """Wrap an iterable in a tqdm bar on stderr when asked (or when stderr is a terminal)."""
    return tqdm(iterable, total=total, desc=desc, unit="feat", file=sys.stderr,
                disable=not enabled, leave=False, mininterval=0.25)


def _want_progress(progress: bool | None) -> bool:
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
    fid = row["feature_id"]
    fid = cell_fid(fid)
    return Area(technology=tech, status=status, geometry=geom, max_down_mbps=down,
                max_up_mbps=up, available_from=when, feature_id=fid), [], notes


def _town_feature(row, geom):
    """Return (Town, problems, notes) for one row."""
    problems, notes = [], []
    name = text_cell(row["name"])
    if not name:
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
    return Town(slug=slug, name=name, name_ru=text_cell(row["name_ru"]),
                population=int(population) if population is not None else None,
                lat=float(lat), lon=float(lon), geometry=geom,
                alt_names=alt_names_cell(row["alt_names"])), [], notes


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


def live_region(conn) -> tuple | None:
    """Return the bounds of the live towns layer, the region coverage must lie in."""
    towns = layers.load_towns(conn)
    if not towns:
        return None
    return tuple(shapely.total_bounds([t.geometry for t in towns]).tolist())


class _Counted(list):
    """A list that advances a progress bar as ``store_layer`` iterates over it."""

    def __init__(self, items, bar):
        super().__init__(items)
        self._bar = bar

    def __iter__(self):
        for item in super().__iter__():
            yield item
            self._bar.update(1)


def _measure_shares(db_path, kind: str, features: list, progress: bool) -> tuple[int, dict] | None:
    """Return the town shares of a new layer over the live layer of the other kind, as (its id, shares).

    Measured before the write transaction: at 100,000 polygons this takes tens of seconds,
    which staff writing an incident meanwhile should not wait for. None without that layer.
    """
    from portal.coverage.index import ShareMeter  # the index imports the layer records

    conn = db.connect_readonly(db_path)
    try:
        other = layers.live_layer_ids(conn)["coverage" if kind == "towns" else "towns"]
        if other is None:
            return None
        if kind == "towns":
            meter = ShareMeter.of(layers.load_coverage(conn, other), features)
        else:
            meter = ShareMeter.of(features, layers.load_towns(conn, other))
    finally:
        conn.close()
    with tqdm(total=len(meter.towns), desc="town shares", unit="town", file=sys.stderr,
              disable=not progress, leave=False, mininterval=0.25) as bar:
        return other, meter.all_entries(done=bar.update)


def write_layer(db_path, kind: str, features: list, *, source: str, author: str,
                checksum: str | None = None, as_of: str | None = None, report: dict | None = None,
                progress: bool | None = False) -> int:
    """Store a layer and make it live in one transaction (with an audit row, town shares); return its id."""
    # A database from before shares were stored gets their table here.
    db.migrate(db_path)
    shares = _measure_shares(db_path, kind, features, bool(progress))
    with db.writing(db_path) as conn:
        with tqdm(total=len(features), desc="writing", unit="feat", file=sys.stderr,
                  disable=not progress, leave=False, mininterval=0.25) as bar:
            layer_id = layers.store_layer(
                conn, kind, _Counted(features, bar), source=source, author=author,
                checksum=checksum, as_of=as_of, report=report, shares=shares,
            )
        conn.execute(
            "INSERT INTO audit (at, author, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (db.iso(db.utcnow()), author, "layer.import", f"layer {layer_id}",
             json.dumps({"kind": kind, "source": source, "checksum": checksum,
                         "features": len(features)})),
        )
    return layer_id


def import_layer(db_path, kind: str, path, *, mapping=None, dry_run: bool = False,
                 skip_invalid: bool = False, author: str, progress: bool | None = False,
                 as_of: str | None = None) -> ImportResult:
    """Check a file against the live database and (unless a dry run) make it the live layer.

    Raises UnreadableFile/BadMapping when the file cannot be used at all, and FileRefused
    (with the report) when features are refused and ``skip_invalid`` is false.
    """
    from portal.data.import_report import diff_layers  # the diff pulls in the coverage index

    show = _want_progress(progress)
    if not Path(db_path).exists():
        if dry_run:  # a dry run writes nothing, not even a new empty database
            with tempfile.TemporaryDirectory() as tmp:
                empty = Path(tmp) / "empty.sqlite"
                db.migrate(empty)
                result = import_layer(empty, kind, path, mapping=mapping, dry_run=True,
                                      skip_invalid=skip_invalid, author=author, progress=progress)
            return result
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        db.migrate(db_path)
    conn = db.connect_readonly(db_path)
    try:
        region = live_region(conn) if kind == "coverage" else None
        read = read_layer(path, kind, mapping, region=region, progress=show)
        report = read.report
        if region is None and kind == "coverage":
            report["notes"].append("no live towns layer: the region check was skipped")
        diff = diff_layers(conn, kind, read.features) if dry_run else None
        if kind == "towns":
            _warn_removed_towns(conn, read.features, report)
    finally:
        conn.close()
    report["checksum"] = file_checksum(path)
    report["skip_invalid"] = skip_invalid
    result = ImportResult(report=report, diff=diff, dry_run=dry_run)
    if report["refused"] and not skip_invalid:
        raise FileRefused(_refusal_message(report), result)
    if not read.features:
        raise FileRefused(f"{report['file']} has no usable {kind} feature; nothing was imported.",
                          result)
    if dry_run:
        return result
    result.layer_id = write_layer(
        db_path, kind, read.features, source=report["file"], author=author,
        checksum=report["checksum"], as_of=as_of or db.iso(db.utcnow()), report=report,
        progress=show,
    )
    conn = db.connect_readonly(db_path)
    try:
        result.replaced_id = layers.layer_info(conn, result.layer_id)["replaced_id"]
    finally:
        conn.close()
    return result


def _refusal_message(report: dict) -> str:
    """Return the error text listing every refused feature."""
    refused = report["refused"]
    usable = report["features_accepted"]
    lines = [f"{report['file']}: {len(refused)} of {report['features_read']} features cannot be"
             f" used, so nothing was imported (--skip-invalid imports the other {usable}):"]
    lines += [f"  {r['id']}: {r['reason']}" for r in refused]
    return "\n".join(lines)


def _warn_removed_towns(conn, features: list, report: dict) -> None:
    """Warn about towns the import drops that incidents still name."""
    live = {t.slug for t in layers.load_towns(conn)}
    removed = live - {t.slug for t in features}
    if not removed:
        return
    marks = ",".join("?" * len(removed))
    rows = conn.execute(
        f"SELECT it.slug, i.id, i.resolved_at FROM incident_towns it JOIN incidents i"
        f" ON i.id = it.incident_id WHERE it.slug IN ({marks}) ORDER BY i.id", sorted(removed)
    ).fetchall()
    report["removed_towns_in_incidents"] = [
        {"slug": r[0], "incident": r[1], "active": r[2] is None} for r in rows
    ]
    for r in rows:
        state = "active" if r[2] is None else "resolved"
        report["notes"].append(f"WARNING: town {r[0]!r} is removed but {state} incident {r[1]} names it")
