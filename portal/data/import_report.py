"""What an import would change (the dry-run diff) and how reports are printed for staff."""
from __future__ import annotations

import numpy as np
import shapely

from portal.coverage.geo import LocalProjection
from portal.coverage.index import CoverageIndex
from portal.data import layers

AREA_FIELDS = ("technology", "status", "max_down_mbps", "max_up_mbps", "available_from")
TOWN_FIELDS = ("name", "name_ru", "population", "lat", "lon", "alt_names")
SAME_GEOMETRY_DEG = 1e-7  # about 1 cm: a re-export that rounds the last digits is no change
UNION_TILE_M = 5000.0  # tile edge for measuring unions
LIST_LIMIT = 50  # lines of ids printed per section; the report dict keeps them all


def _same_geometries(a: list, b: list) -> np.ndarray:
    """Compare geometry pairs, ignoring vertex order and sub-centimetre rounding."""
    if not a:
        return np.zeros(0, dtype=bool)
    ga = shapely.normalize(np.array(a, dtype=object))
    gb = shapely.normalize(np.array(b, dtype=object))
    return shapely.equals_exact(ga, gb, tolerance=SAME_GEOMETRY_DEG)


def _key(feature, kind: str, n: int):
    """Return the identity a feature is matched on: id/slug, else its geometry."""
    if kind == "towns":
        return ("slug", feature.slug)
    if feature.feature_id is not None:
        return ("id", feature.feature_id)
    # Without ids, equal geometry is the only identity; n separates repeated shapes.
    return ("geom", shapely.to_wkb(shapely.normalize(feature.geometry), hex=True), n)


def _keyed(features: list, kind: str) -> dict:
    """Return {key: feature}, numbering repeated geometry keys."""
    out, seen = {}, {}
    for f in features:
        base = _key(f, kind, 0)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out[_key(f, kind, n)] = f
    return out


def feature_keys(features: list, kind: str) -> set:
    """Return the identities features are matched on (as ``feature_changes`` matches them)."""
    return set(_keyed(features, kind))


def _label(key, feature, kind: str) -> str:
    """Return how the diff names a feature."""
    if key[0] in ("id", "slug"):
        return str(key[1])
    c = shapely.point_on_surface(feature.geometry)
    return f"{feature.technology}/{feature.status} area at {c.y:.5f}, {c.x:.5f}"


def feature_changes(old: list, new: list, kind: str) -> tuple[dict, list]:
    """Return features added, removed and changed (by feature_id or slug, else by geometry).

    The second value lists what moved: for coverage, the geometries of every added,
    removed or changed area (old and new); for towns, the features themselves.
    """
    before, after = _keyed(old, kind), _keyed(new, kind)
    fields = TOWN_FIELDS if kind == "towns" else AREA_FIELDS
    common = [k for k in after if k in before]
    same_geom = _same_geometries([before[k].geometry for k in common],
                                 [after[k].geometry for k in common])
    changed, moved = [], []
    for k, same in zip(common, same_geom):
        what = [f for f in fields if getattr(before[k], f) != getattr(after[k], f)]
        if not same:
            what.append("geometry")
        if what:
            changed.append({"id": _label(k, after[k], kind), "fields": what})
            moved += [before[k], after[k]]
    added = [f for k, f in after.items() if k not in before]
    removed = [f for k, f in before.items() if k not in after]
    moved += added + removed
    return {
        "added": [_label(k, f, kind) for k, f in after.items() if k not in before],
        "removed": [_label(k, f, kind) for k, f in before.items() if k not in after],
        "changed": changed,
        "unchanged": len(common) - len(changed),
    }, ([f.geometry for f in moved] if kind == "coverage" else moved)


def union_area_m2(geoms: np.ndarray, tile_m: float = UNION_TILE_M) -> float:
    """Return the area of the union of projected polygons, unioning tile by tile.

    One union of tens of thousands of overlapping polygons can take minutes; tiles
    partition the plane, so the per-tile unions add up to the same area much faster.
    """
    if len(geoms) == 0:
        return 0.0
    b = shapely.bounds(geoms)
    i0, j0 = np.floor(b[:, 0] / tile_m).astype(int), np.floor(b[:, 1] / tile_m).astype(int)
    i1, j1 = np.floor(b[:, 2] / tile_m).astype(int), np.floor(b[:, 3] / tile_m).astype(int)
    buckets: dict = {}
    for k in range(len(geoms)):
        if i0[k] == i1[k] and j0[k] == j1[k]:
            buckets.setdefault((i0[k], j0[k]), []).append(geoms[k])
            continue
        for i in range(i0[k], i1[k] + 1):
            for j in range(j0[k], j1[k] + 1):
                part = shapely.clip_by_rect(geoms[k], i * tile_m, j * tile_m,
                                            (i + 1) * tile_m, (j + 1) * tile_m)
                if not part.is_empty:
                    buckets.setdefault((i, j), []).append(part)
    return float(sum(shapely.area(shapely.union_all(np.array(parts, dtype=object)))
                     for parts in buckets.values()))


def covered_km2(areas: list, projection: LocalProjection, cache: dict | None = None) -> dict:
    """Return the covered area in km² per technology and status (overlaps counted once)."""
    groups: dict = {}
    for a in areas:
        groups.setdefault((a.technology, a.status), []).append(a.geometry)
    cache = {} if cache is None else cache
    out: dict = {}
    for (tech, status), geoms in sorted(groups.items()):
        arr = np.array(geoms, dtype=object)
        # The same polygons before and after (a re-import) are measured once.
        key = (tech, status, hash(tuple(sorted(shapely.to_wkb(shapely.normalize(arr)).tolist()))))
        if key not in cache:
            cache[key] = round(union_area_m2(projection.to_equal_area(arr)) / 1e6, 3)
        out.setdefault(tech, {})[status] = cache[key]
    return out


def _region_projection(*groups) -> LocalProjection:
    """Return an equal-area projection centred on everything being compared."""
    geoms = [f.geometry for g in groups for f in g]
    if not geoms:
        return LocalProjection(0.0, 0.0)
    return LocalProjection.for_bounds(*shapely.total_bounds(geoms).tolist())


def town_changes(before: dict, after: dict, towns_by_slug: dict) -> list[dict]:
    """Return the towns whose best live technology or fiber share differs."""
    out = []
    for slug in sorted(set(before) | set(after)):
        b, a = before.get(slug), after.get(slug)
        best = (b["best"] if b else None, a["best"] if a else None)
        fiber = (b["fiber_share"] if b else None, a["fiber_share"] if a else None)
        if best[0] != best[1] or fiber[0] != fiber[1] or (b is None) != (a is None):
            town = towns_by_slug.get(slug)
            out.append({"slug": slug, "name": town.name if town else slug,
                        "best": list(best), "fiber_share": list(fiber)})
    return out


def _touched_towns(towns: list, geoms: list) -> list:
    """Return the towns whose extent meets any of the geometries (changed features)."""
    if not towns or not geoms:
        return []
    tree = shapely.STRtree(np.array(geoms, dtype=object))
    hit = tree.query(np.array([t.geometry for t in towns], dtype=object), predicate="intersects")[0]
    return [towns[i] for i in sorted(set(hit.tolist()))]


def diff_layers(conn, kind: str, features: list) -> dict:
    """Return the difference between the live layer of ``kind`` and ``features``."""
    towns = layers.load_towns(conn)
    areas = layers.load_coverage(conn)
    if kind == "coverage":
        diff, moved = feature_changes(areas, features, kind)
        projection = _region_projection(areas, features)
        cache: dict = {}
        diff["km2_before"] = covered_km2(areas, projection, cache)
        diff["km2_after"] = covered_km2(features, projection, cache)
        # Only towns an added, removed or changed area touches can change verdict.
        old_towns = new_towns = _touched_towns(towns, moved)
        old_areas, new_areas = areas, features
    else:
        diff, moved = feature_changes(towns, features, kind)
        moved_slugs = {t.slug for t in moved}
        old_towns = [t for t in towns if t.slug in moved_slugs]
        new_towns = [t for t in features if t.slug in moved_slugs]
        old_areas = new_areas = areas
    before = CoverageIndex(old_areas, old_towns).all_town_summaries() if old_towns else {}
    after = CoverageIndex(new_areas, new_towns).all_town_summaries() if new_towns else {}
    by_slug = {t.slug: t for t in old_towns} | {t.slug: t for t in new_towns}
    diff["towns_changed"] = town_changes(before, after, by_slug)
    return diff


def _listed(lines: list[str], items: list[str], indent: str = "    ") -> None:
    """Append up to LIST_LIMIT items and a count of the rest."""
    lines += [indent + str(i) for i in items[:LIST_LIMIT]]
    if len(items) > LIST_LIMIT:
        lines.append(f"{indent}... and {len(items) - LIST_LIMIT} more")


def format_report(report: dict) -> str:
    """Return the import report as text for the terminal."""
    lines = [f"File: {report['file']} (layer {report['layer']}, {report.get('driver') or 'GDAL'},"
             f" CRS {report['crs']} -> EPSG:4326)"]
    if report.get("mapping"):
        lines.append(f"Mapping: {report['mapping']}")
    lines.append(f"Features: {report['features_read']} read, {report['features_accepted']} usable,"
                 f" {len(report['refused'])} refused")
    if report["kind"] == "coverage":
        for tech, statuses in report["counts"].items():
            lines.append("  " + tech + ": " + ", ".join(f"{n} {s}" for s, n in statuses.items()))
    if report.get("region"):
        lines.append("Region: lon %.4f..%.4f, lat %.4f..%.4f" % (
            report["region"][0], report["region"][2], report["region"][1], report["region"][3]))
    for w in report.get("warnings", []):
        lines.append(f"Note: {w}")
    if report["repaired"]:
        lines.append(f"Repaired with make_valid ({len(report['repaired'])}):")
        _listed(lines, [f"{r['id']}: {r['problem']}" for r in report["repaired"]])
    if report["outside_region"]:
        lines.append(f"Outside the region ({len(report['outside_region'])}):")
        _listed(lines, report["outside_region"])
    if report["refused"]:
        lines.append(f"Refused ({len(report['refused'])}):")
        lines += [f"    {r['id']}: {r['reason']}" for r in report["refused"]]
    if report["notes"]:
        lines.append(f"Notes ({len(report['notes'])}):")
        _listed(lines, report["notes"])
    return "\n".join(lines)


def format_diff(diff: dict, kind: str) -> str:
    """Return the dry-run difference from the live layer as text."""
    lines = [f"Compared with the live {kind} layer: {len(diff['added'])} added,"
             f" {len(diff['removed'])} removed, {len(diff['changed'])} changed,"
             f" {diff['unchanged']} unchanged"]
    for name in ("added", "removed"):
        if diff[name]:
            lines.append(f"  {name.capitalize()}:")
            _listed(lines, diff[name])
    if diff["changed"]:
        lines.append("  Changed:")
        _listed(lines, [f"{c['id']} ({', '.join(c['fields'])})" for c in diff["changed"]])
    if "km2_before" in diff:
        lines.append("Covered area, km² (before -> after):")
        keys = sorted({(t, s) for side in (diff["km2_before"], diff["km2_after"])
                       for t, ss in side.items() for s in ss},
                      key=lambda k: (layers.TECHNOLOGIES.index(k[0]), k[1]))
        for tech, status in keys:
            b = diff["km2_before"].get(tech, {}).get(status, 0.0)
            a = diff["km2_after"].get(tech, {}).get(status, 0.0)
            lines.append(f"  {tech} {status}: {b:,.3f} -> {a:,.3f}")
    towns = diff["towns_changed"]
    lines.append(f"Towns whose verdict or fiber share changes: {len(towns)}")
    for t in towns:
        b, a = t["best"]
        fb, fa = t["fiber_share"]
        pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
        lines.append(f"  {t['name']} ({t['slug']}): best {b or 'none'} -> {a or 'none'},"
                     f" fiber {pct(fb)} -> {pct(fa)}")
    return "\n".join(lines)
