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
from portal.data.text import BadText, check_text

__all__ = [
    "LayerRead", "ImportResult", "FileRefused", "ImportFailure", "UnreadableFile", "BadMapping",
    "Mapping", "load_mapping", "read_layer", "import_layer", "write_layer", "live_region",
]

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POLYGONAL = ("Polygon", "MultiPolygon")
REGION_MARGIN_KM = 10.0  # coverage may reach a little past the outermost town's extent
# An import may remove at most this share of the live layer's features unless told to replace it
# all: a file holding one polygon would otherwise silently replace the region's coverage.
MAX_REMOVED_SHARE = 0.2


class FileRefused(ImportFailure):
    """Some features cannot be used; nothing was written. ``.result`` has the report (and diff)."""

    def __init__(self, message: str, result: "ImportResult"):
        super().__init__(message)
        self.result = result


class RemovesTooMuch(FileRefused):
    """The file would remove more of the live layer than an import may without ``replace_all``.

    ``.result.diff`` holds the whole difference from the live layer, to show before refusing.
    """


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
    # Features of the live layer the file keeps (same id, slug or shape), adds and removes.
    counts: dict | None = None


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
                 as_of: str | None = None, create: bool = False, replace_all: bool = False,
                 max_removed_share: float = MAX_REMOVED_SHARE) -> ImportResult:
    """Check a file against the live database and (unless a dry run) make it the live layer.

    Raises UnreadableFile/BadMapping when the file cannot be used at all, FileRefused (with
    the report) when features are refused and ``skip_invalid`` is false, RemovesTooMuch (with
    the difference) when the file would remove more than ``max_removed_share`` of the live
    layer's features and ``replace_all`` is false, and ImportFailure when ``db_path`` is no
    database and ``create`` is false (only then is a new database file made).
    """
    from portal.data.import_report import diff_layers  # the diff pulls in the coverage index

    try:
        author = check_text("author", str(author))
    except BadText as exc:
        raise ImportFailure(str(exc)) from None
    if not author:
        raise ImportFailure("empty author; give who is importing (--author or $PORTAL_AUTHOR)")
    show = _want_progress(progress)
    if not Path(db_path).exists():
        if dry_run:  # a dry run writes nothing, not even a new empty database
            with tempfile.TemporaryDirectory() as tmp:
                empty = Path(tmp) / "empty.sqlite"
                db.migrate(empty)
                result = import_layer(empty, kind, path, mapping=mapping, dry_run=True,
                                      skip_invalid=skip_invalid, author=author, progress=progress)
            return result
        if not create:
            raise ImportFailure(f"database {db_path} does not exist; give the portal's database (--db), or"
                                " make a new empty one on purpose with --create")
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        db.migrate(db_path)
    conn = db.connect_readonly(db_path)
    try:
        region = live_region(conn) if kind == "coverage" else None
        read = read_layer(path, kind, mapping, region=region, progress=show)
        report = read.report
        if region is None and kind == "coverage":
            report["notes"].append("no live towns layer: the region check was skipped")
        live = layers.load_towns(conn) if kind == "towns" else layers.load_coverage(conn)
        counts = _kept_added_removed(live, read.features, kind)
        too_much = bool(not replace_all and live and read.features
                    and counts["removed"] > max_removed_share * len(live))
        if too_much:
            report["notes"].append(
                f"WARNING: this file removes {counts['removed']} of the {len(live)} live {kind} features"
                f" ({counts['removed'] / len(live):.0%}); an import stops above {max_removed_share:.0%}"
                " unless run with --replace-all")
        diff = diff_layers(conn, kind, read.features) if dry_run or too_much else None
        if kind == "towns":
            _warn_removed_towns(conn, read.features, report)
    finally:
        conn.close()
    report["checksum"] = file_checksum(path)
    report["skip_invalid"] = skip_invalid
    result = ImportResult(report=report, diff=diff, dry_run=dry_run, counts=counts)
    if report["refused"] and not skip_invalid:
        raise FileRefused(_refusal_message(report), result)
    if not read.features:
        raise FileRefused(f"{report['file']} has no usable {kind} feature; nothing was imported.",
                          result)
    if dry_run:
        return result
    if too_much:
        raise RemovesTooMuch(
            f"{report['file']} would remove {counts['removed']} of the {len(live)} live {kind} features"
            f" ({counts['removed'] / len(live):.0%}) and keep {counts['kept']}; an import may remove at most"
            f" {max_removed_share:.0%} unless told to replace the whole layer, so nothing was imported."
            " Check the difference above; if the file really is the whole new layer, run again with"
            " --replace-all.", result)
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


def _kept_added_removed(live: list, features: list, kind: str) -> dict:
    """Count the live features the file keeps, and those it adds and removes (by id, slug or shape)."""
    from portal.data.import_report import feature_keys

    before, after = feature_keys(live, kind), feature_keys(features, kind)
    kept = len(before & after)
    return {"kept": kept, "added": len(after) - kept, "removed": len(before) - kept}


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
