"""Deterministic provider-scale data: towns, coverage polygons, incidents and query points.

Everything is drawn from one seeded generator, so two runs with the same
sizes produce the same files and the same answers. Files are written as
GeoPackage and loaded through ``portal.imports.import_layer``, the path staff
imports take; incidents go through the validating write functions of
``portal.incidents`` inside one transaction (the bulk path the demo build uses).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from portal.data import db, imports
from portal.incidents import writes as incidents

# A region the size of a Russian oblast (about 250 km x 330 km), like the demo's.
REGION = (27.6, 55.8, 31.6, 58.8)
TECHNOLOGIES = np.array(["fiber", "cable", "dsl", "wireless"])
TECH_WEIGHTS = (0.4, 0.2, 0.25, 0.15)
SYLLABLES = ("ka", "lo", "vi", "ne", "po", "ru", "sta", "mir", "go", "dor", "ve", "li", "ki",
             "no", "pe", "cho", "ry", "zo", "ya", "ost", "bor", "gra", "sel", "tsy")
CYRILLIC = {"ka": "ка", "lo": "ло", "vi": "ви", "ne": "не", "po": "по", "ru": "ру", "sta": "ста",
            "mir": "мир", "go": "го", "dor": "дор", "ve": "ве", "li": "ли", "ki": "ки", "no": "но",
            "pe": "пе", "cho": "чо", "ry": "ры", "zo": "зо", "ya": "я", "ost": "ост", "bor": "бор",
            "gra": "гра", "sel": "сел", "tsy": "цы"}


@dataclass(frozen=True)
class Scale:
    """How much data to make."""

    towns: int
    polygons: int
    incidents: int
    points: int


FULL = Scale(towns=1_000, polygons=100_000, incidents=10_000, points=1_000_000)
SMALL = Scale(towns=50, polygons=2_000, incidents=200, points=20_000)


def _metres_to_deg(lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return degrees of longitude and latitude per metre at these latitudes."""
    return 1.0 / (111_320.0 * np.cos(np.radians(lat))), np.full_like(lat, 1.0 / 110_574.0)


def _blobs(rng, lon, lat, radius_m, n_vertices) -> np.ndarray:
    """Return star-shaped (hence valid) polygons with wobbly edges around centres."""
    count = len(lon)
    total = int(n_vertices.sum())
    owner = np.repeat(np.arange(count), n_vertices)
    start = np.repeat(np.cumsum(n_vertices) - n_vertices, n_vertices)
    k = np.arange(total) - start
    angle = 2 * np.pi * k / n_vertices[owner]
    # A few low harmonics give block- and town-like outlines rather than circles.
    phase = rng.uniform(0, 2 * np.pi, size=(count, 3))
    amp = rng.uniform(0.05, 0.25, size=(count, 3))
    wobble = 1 + sum(amp[owner, h] * np.sin((h + 2) * angle + phase[owner, h]) for h in range(3))
    wobble *= 1 + rng.uniform(-0.04, 0.04, size=total)
    r = radius_m[owner] * wobble
    dlon, dlat = _metres_to_deg(lat[owner])
    x = lon[owner] + r * np.cos(angle) * dlon
    y = lat[owner] + r * np.sin(angle) * dlat
    # linearrings closes each ring by repeating its first vertex.
    return shapely.polygons(shapely.linearrings(np.column_stack((x, y)), indices=owner))


def _name(rng) -> tuple[str, str]:
    """Return a made-up town name of two or three syllables, in Latin and Cyrillic letters."""
    parts = [SYLLABLES[p] for p in rng.choice(len(SYLLABLES), size=int(rng.integers(2, 4)))]
    return "".join(parts), "".join(CYRILLIC[p] for p in parts)


def make_towns(rng, n: int) -> gpd.GeoDataFrame:
    """Return ``n`` towns with population, Russian name and an irregular extent."""
    minx, miny, maxx, maxy = REGION
    lon = rng.uniform(minx + 0.1, maxx - 0.1, n)
    lat = rng.uniform(miny + 0.1, maxy - 0.1, n)
    population = np.round(np.exp(rng.normal(7.0, 1.3, n)) + 50).astype(int)
    radius = np.clip(60 * np.sqrt(population), 400, 8_000)
    geoms = _blobs(rng, lon, lat, radius, rng.integers(24, 65, n))
    names, ru, seen = [], [], set()
    while len(names) < n:
        name, name_ru = _name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
            ru.append(name_ru.capitalize())
    return gpd.GeoDataFrame({
        "name": [n.capitalize() for n in names], "slug": names, "name_ru": ru,
        "population": population, "lat": lat, "lon": lon,
    }, geometry=geoms, crs="EPSG:4326")


def make_coverage(rng, towns: gpd.GeoDataFrame, n: int, detail: float = 1.0) -> gpd.GeoDataFrame:
    """Return ``n`` coverage polygons from street blocks to small towns, clustered on towns.

    ``detail`` multiplies the vertices per polygon (1: 75 on average; the same draws either way).
    """
    weight = np.sqrt(towns["population"].to_numpy(float))
    town_i = rng.choice(len(towns), size=n, p=weight / weight.sum())
    spread = np.clip(60 * np.sqrt(towns["population"].to_numpy(float)), 400, 8_000)[town_i] * 1.3
    # One in ten polygons lies out of town (villages, cottage settlements along roads).
    spread[rng.random(n) < 0.1] *= 4
    dlon, dlat = _metres_to_deg(towns["lat"].to_numpy()[town_i])
    off = rng.normal(0, 0.5, size=(n, 2)) * spread[:, None]
    lon = towns["lon"].to_numpy()[town_i] + off[:, 0] * dlon
    lat = towns["lat"].to_numpy()[town_i] + off[:, 1] * dlat
    # Keep every polygon within the towns' extent: the import refuses coverage far outside it.
    minx, miny, maxx, maxy = shapely.total_bounds(towns.geometry.values)
    lon, lat = np.clip(lon, minx, maxx), np.clip(lat, miny, maxy)
    # Log-uniform radius: most are blocks (50-300 m), a few cover a small town (~3 km).
    radius = np.exp(rng.uniform(np.log(40), np.log(3_000), n))
    vertices = np.clip(((20 + radius / 15) * detail).astype(int) + rng.integers(0, 20, n), 20,
                       int(200 * detail))
    geoms = _blobs(rng, lon, lat, radius, vertices)
    tech = TECHNOLOGIES[rng.choice(4, size=n, p=TECH_WEIGHTS)]
    planned = rng.random(n) < 0.15
    down = np.choose(rng.choice(4, size=n, p=TECH_WEIGHTS), [1000, 500, 50, 100]).astype(float)
    days = rng.integers(30, 720, n)
    base = datetime(2027, 1, 1)
    return gpd.GeoDataFrame({
        "feature_id": [f"c{i:06d}" for i in range(n)],
        "technology": tech,
        "status": np.where(planned, "planned", "live"),
        "max_down_mbps": down,
        "max_up_mbps": down / 2,
        "available_from": [(base + timedelta(days=int(d))).date().isoformat() if p else None
                           for d, p in zip(days, planned)],
    }, geometry=geoms, crs="EPSG:4326")


def make_points(rng, towns: gpd.GeoDataFrame, n: int) -> np.ndarray:
    """Return ``n`` (lat, lon) query points: most in towns, weighted by population, the rest anywhere."""
    weight = towns["population"].to_numpy(float)
    in_town = int(n * 0.7)
    town_i = rng.choice(len(towns), size=in_town, p=weight / weight.sum())
    spread = np.clip(60 * np.sqrt(weight), 400, 8_000)[town_i]
    dlon, dlat = _metres_to_deg(towns["lat"].to_numpy()[town_i])
    off = rng.normal(0, 0.6, size=(in_town, 2)) * spread[:, None]
    lat = np.concatenate((towns["lat"].to_numpy()[town_i] + off[:, 1] * dlat,
                          rng.uniform(REGION[1], REGION[3], n - in_town)))
    lon = np.concatenate((towns["lon"].to_numpy()[town_i] + off[:, 0] * dlon,
                          rng.uniform(REGION[0], REGION[2], n - in_town)))
    order = rng.permutation(n)
    return np.round(np.column_stack((lat[order], lon[order])), 6)


def write_files(folder: Path, scale: Scale, seed: int = 6, detail: float = 1.0) -> dict:
    """Write towns.gpkg and coverage.gpkg and return the frames and query points."""
    rng = np.random.default_rng(seed)
    towns = make_towns(rng, scale.towns)
    coverage = make_coverage(rng, towns, scale.polygons, detail)
    points = make_points(rng, towns, scale.points)
    folder.mkdir(parents=True, exist_ok=True)
    towns.to_file(folder / "towns.gpkg", driver="GPKG")
    coverage.to_file(folder / "coverage.gpkg", driver="GPKG")
    return {"towns": towns, "coverage": coverage, "points": points,
            "vertices": int(shapely.get_num_coordinates(coverage.geometry.values).sum())}


def import_files(db_path: Path, folder: Path) -> dict:
    """Import both layers through the staff import path; return seconds per layer."""
    timings = {}
    for kind in ("towns", "coverage"):
        t0 = _clock()
        imports.import_layer(db_path, kind, folder / f"{kind}.gpkg", author="bench", progress=False,
                             create=True)
        timings[kind] = _clock() - t0
    with db.writing(db_path) as conn:
        db.set_meta(conn, "region", "Benchmark oblast")
        db.set_meta(conn, "region_ru", "Тестовая область")
        db.set_meta(conn, "timezone", "Europe/Moscow")
    return timings


def _clock() -> float:
    """Return a monotonic clock in seconds."""
    import time

    return time.perf_counter()


def write_incidents(db_path: Path, towns: gpd.GeoDataFrame, n: int, now: datetime | None = None,
                    seed: int = 7) -> int:
    """Write ``n`` incidents over three years (a few active now) through the validating writes."""
    rng = np.random.default_rng(seed)
    now = (now or db.utcnow()).replace(microsecond=0)
    slugs = towns["slug"].tolist()
    weight = np.sqrt(towns["population"].to_numpy(float))
    weight /= weight.sum()
    span_s = 3 * 365 * 86400
    starts = np.sort(rng.uniform(0, span_s, n))
    active_from = span_s - 3 * 86400  # incidents started in the last three days may still be open
    written = 0
    with db.writing(db_path) as conn:
        for k in range(n):
            at = now - timedelta(seconds=span_s) + timedelta(seconds=float(starts[k]))
            town_i = rng.choice(len(slugs), size=int(rng.integers(1, 4)), p=weight)
            listed = sorted({slugs[i] for i in town_i})
            services = sorted({str(s) for s in rng.choice(incidents.SERVICES, size=int(rng.integers(1, 3)))})
            area = None
            if rng.random() < 0.3:
                # A street or a district instead of whole towns.
                t = towns.iloc[int(town_i[0])]
                area = _blobs(rng, np.array([t["lon"]]), np.array([t["lat"]]),
                              np.array([float(rng.uniform(150, 900))]), np.array([24]))[0]
                listed = []
            common = {"title": f"Incident {k}", "services": services, "towns": listed, "area": area,
                      "author": "bench", "now": now}
            if rng.random() < 0.15:
                start = at + timedelta(days=float(rng.uniform(0, 2)))
                end = start + timedelta(hours=float(rng.uniform(1, 6)))
                incidents._schedule(conn, start=start, end=end, message=None, **common)
            else:
                kind = "outage" if rng.random() < 0.75 else "degraded"
                iid = incidents._open(conn, kind=kind, at=at, eta=None, message=None, cause=None, **common)
                last = at + timedelta(minutes=float(rng.uniform(5, 120)))
                if last < now:
                    incidents._update(conn, iid, status="identified", message="Cause found", at=last,
                                      eta=None, cause="cable cut", author="bench", now=now)
                fixed = last + timedelta(hours=float(rng.exponential(5)))
                if starts[k] < active_from or fixed < now and rng.random() < 0.5:
                    incidents._resolve(conn, iid, message="Restored", at=min(fixed, now), author="bench",
                                       now=now)
            written += 1
    return written


def heaviest_towns(towns: gpd.GeoDataFrame, coverage: gpd.GeoDataFrame, count: int = 5) -> list[str]:
    """Return the slugs of the towns whose extents meet the most coverage polygons."""
    tree = shapely.STRtree(coverage.geometry.values)
    hits = np.bincount(tree.query(towns.geometry.values)[0], minlength=len(towns))
    return [towns["slug"].iloc[i] for i in np.argsort(-hits)[:count]]

