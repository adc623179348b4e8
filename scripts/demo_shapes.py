"""Shapes of the demo region: street-block town extents and a fictional provider's coverage.

Everything here works in metres, in each town's local azimuthal equidistant projection, and
draws only from seeded numpy Generators, so the demo files come out byte-identical each run.
Used by ``scripts/make_demo_data.py``.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Geod, Transformer

SEED = 2026
AS_OF = "2026-11-01"
COUNTRY, ADMIN1 = "RU", "60"  # GeoNames admin1 code 60 is Pskov oblast
DENSITY_PER_KM2 = 2500.0  # people per km² of built-up area in a small Russian town
MIN_AREA_KM2 = 0.25  # villages and places GeoNames lists with population 0
MAX_ALT_NAMES = 15
GRID = 1e-6  # degrees; the 6-decimal rounding of every coordinate written
# Block width, block depth, street width (metres) by settlement size.
BLOCK_SIZES = {
    "city": (160.0, 110.0, 18.0),
    "town": (120.0, 85.0, 14.0),
    "village": (80.0, 60.0, 10.0),
}
CORNER_JITTER_M = 3.0

SPEEDS = {
    "fiber": (1000, 500),
    "cable": (300, 30),
    "dsl_town": (24, 1),
    "dsl_village": (8, 0.5),
    "wireless": (50, 10),
}

PROFILES = ("full_fiber", "partial_fiber", "planned_fiber", "dsl_only", "wireless_only", "none")
FULL_FIBER_TOWNS = ("pskov", "velikiye-luki")
PECHORY = "pechory"
PECHORY_FIBER_SHARE = 0.625
PECHORY_FIBER_BEARING = 70.0  # degrees from north: away from the Estonian border to the west
HOLE_TOWNS = 2  # fiber rings around a historic centre: polygons with an inner ring


GEOD = Geod(ellps="WGS84")


@dataclass
class Town:
    """A locality with its street blocks in a local azimuthal equidistant projection (metres)."""

    slug: str
    name: str
    name_ru: str
    population: int
    lat: float
    lon: float
    alt_names: list[str]
    geonameid: int | None
    fictional: bool = False
    blocks: np.ndarray = field(default=None, repr=False)  # shapely Polygons, metres
    centres: np.ndarray = field(default=None, repr=False)  # (n, 2) block centroids
    pad: float = 0.0  # buffer that closes the streets between blocks
    pitch: float = 0.0  # typical distance between neighbouring block centres
    radius: float = 0.0
    extent_m: object = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """Return the settlement size class that sets block and street sizes."""
        if self.population >= 50000:
            return "city"
        if self.population >= 3000:
            return "town"
        return "village"

    @property
    def seed(self) -> list[int]:
        """Return a per-town seed so a town's shapes do not depend on the other towns."""
        return [SEED, self.geonameid if self.geonameid is not None else zlib.crc32(self.slug.encode())]


@dataclass
class Area:
    """One coverage feature: a technology with a status, dissolved for one town."""

    feature_id: str
    town: str
    technology: str
    status: str
    down: float
    up: float
    available_from: str | None
    geom_m: object  # metres, in the town's local projection


# ---------------------------------------------------------------- projections


def local_crs(lat: float, lon: float, kind: str = "aeqd") -> str:
    """Return a proj string for a projection centred on a point (aeqd: metres, laea: equal-area)."""
    return f"+proj={kind} +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs"


def transformer(src: str, dst: str) -> Transformer:
    """Return an always-xy transformer between two CRSs."""
    return Transformer.from_crs(src, dst, always_xy=True)


def reproject(geom, src: str, dst: str):
    """Return a geometry reprojected between two CRSs."""
    trans = transformer(src, dst)
    return shapely.transform(geom, lambda xy: np.column_stack(trans.transform(xy[:, 0], xy[:, 1])))


def to_lonlat(town: Town, geom_m):
    """Return a geometry in the town's local metres as valid EPSG:4326 on the 6-decimal grid."""
    geom = reproject(geom_m, local_crs(town.lat, town.lon), "EPSG:4326")
    geom = shapely.set_precision(geom, GRID)
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    return shapely.orient_polygons(geom)


def ground_area(geom_lonlat, lat: float, lon: float) -> float:
    """Return the area of a lon/lat geometry in m² (equal-area projection centred on lat, lon)."""
    return reproject(geom_lonlat, "EPSG:4326", local_crs(lat, lon, "laea")).area


def geodesic_distance(geom_lonlat, lon: float, lat: float) -> float:
    """Return the geodesic distance in metres from a point to a lon/lat geometry."""
    crs = local_crs(lat, lon)
    geom_m = reproject(geom_lonlat, "EPSG:4326", crs)
    near = shapely.get_coordinates(shapely.shortest_line(shapely.Point(0, 0), geom_m))[1]
    near_lon, near_lat = transformer(crs, "EPSG:4326").transform(near[0], near[1])
    return GEOD.inv(lon, lat, near_lon, near_lat)[2]


# ---------------------------------------------------------------- extents


def noisy_radius(rng: np.random.Generator, radius: float):
    """Return a function of bearing giving a wobbly town edge (a few low harmonics)."""
    orders = np.arange(2, 6)
    amplitudes = rng.uniform(0.02, 0.12, size=orders.size) / np.sqrt(orders - 1)
    phases = rng.uniform(0, 2 * math.pi, size=orders.size)

    def edge(phi: np.ndarray) -> np.ndarray:
        """Return the edge radius at bearings phi."""
        wobble = (amplitudes * np.cos(np.outer(phi, orders) + phases)).sum(axis=1)
        return radius * (1 + wobble)

    return edge


def grid_lines(rng: np.random.Generator, span: float, size: float, street: float) -> np.ndarray:
    """Return street centre lines across [-span, span] with irregular block sizes between them."""
    lines = [-span - rng.uniform(0, size)]
    while lines[-1] < span:
        lines.append(lines[-1] + size * rng.uniform(0.7, 1.3) + street)
    return np.array(lines)


def street_blocks(town: Town, rng: np.random.Generator, area_km2: float) -> None:
    """Fill a town with jittered street blocks of a rotated grid inside a noisy radius."""
    width, depth, street = BLOCK_SIZES[town.kind]
    town.radius = math.sqrt(area_km2 * 1e6 / math.pi)
    town.pad = street / 2 + CORNER_JITTER_M + 1.0
    town.pitch = math.hypot(width + street, depth + street)
    span = town.radius * 1.5
    xs = grid_lines(rng, span, width, street)
    ys = grid_lines(rng, span, depth, street)
    x0, y0 = np.meshgrid(xs[:-1] + street / 2, ys[:-1] + street / 2, indexing="ij")
    x1, y1 = np.meshgrid(xs[1:] - street / 2, ys[1:] - street / 2, indexing="ij")
    x0, y0, x1, y1 = (a.ravel() for a in (x0, y0, x1, y1))
    corners = np.stack([np.column_stack(c) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=1)
    corners = corners + rng.uniform(-CORNER_JITTER_M, CORNER_JITTER_M, size=corners.shape)
    angle = rng.uniform(0, math.pi / 2)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = corners @ rotation.T
    centres = corners.mean(axis=1)
    edge = noisy_radius(rng, town.radius)
    keep = np.hypot(centres[:, 0], centres[:, 1]) < edge(np.arctan2(centres[:, 1], centres[:, 0]))
    rings = np.concatenate([corners[keep], corners[keep][:, :1]], axis=1)
    town.blocks = shapely.polygons(rings)
    town.centres = centres[keep]
    town.extent_m = dissolve(town.blocks, town.pad)


def dissolve(blocks: np.ndarray, pad: float):
    """Return the union of blocks grown by pad so the streets between them close."""
    grown = shapely.buffer(blocks, pad, join_style="mitre", mitre_limit=2.0)
    return shapely.union_all(grown)


# ---------------------------------------------------------------- coverage shapes


def bearing_vector(bearing_deg: float) -> np.ndarray:
    """Return the unit vector (east, north) of a compass bearing."""
    rad = math.radians(bearing_deg)
    return np.array([math.sin(rad), math.cos(rad)])


def node_order(town: Town, node: np.ndarray) -> np.ndarray:
    """Return block indices ordered by distance from a network node (contiguous growth)."""
    dist = np.hypot(*(town.centres - node).T)
    return np.argsort(dist, kind="stable")


def blocks_for_share(town: Town, order: np.ndarray, target: float, start: int = 0) -> int:
    """Return how many blocks of order (after start) cover about target of the extent."""
    total = town.extent_m.area
    base = dissolve(town.blocks[order[:start]], town.pad).area if start else 0.0
    lo, hi = start, len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        share = (dissolve(town.blocks[order[:mid]], town.pad).area - base) / total
        if share < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def sector(rng: np.random.Generator, tower: np.ndarray, bearing: float, width: float, reach: float):
    """Return an irregular radio sector: a fan whose reach wobbles with bearing and terrain."""
    bearings = np.radians(np.linspace(bearing - width / 2, bearing + width / 2, 48))
    orders = np.array([3.0, 7.0, 13.0])
    phases = rng.uniform(0, 2 * math.pi, size=orders.size)
    wobble = (np.array([0.12, 0.07, 0.04]) * np.cos(np.outer(bearings, orders) + phases)).sum(axis=1)
    wobble += rng.uniform(-0.04, 0.04, size=bearings.size)  # hills and tree lines
    reaches = reach * (1 + wobble)
    arc = np.column_stack([tower[0] + reaches * np.sin(bearings), tower[1] + reaches * np.cos(bearings)])
    return shapely.make_valid(shapely.Polygon(np.vstack([tower, arc, tower])))


def planned_date(rng: np.random.Generator) -> str:
    """Return a first-of-month date in 2027 for planned construction."""
    return f"2027-{int(rng.integers(1, 13)):02d}-01"


def area(town: Town, technology: str, status: str, geom_m, date: str | None = None) -> Area:
    """Return a coverage feature with the technology's usual speeds."""
    key = technology
    if technology == "dsl":
        key = "dsl_town" if town.population >= 3000 else "dsl_village"
    down, up = SPEEDS[key]
    return Area(f"{town.slug}-{technology}-{status}", town.slug, technology, status, down, up, date, geom_m)


def all_blocks(town: Town, extra: float = 0.0):
    """Return the whole town's blocks dissolved, grown by extra metres beyond the extent."""
    return dissolve(town.blocks, town.pad + extra)


def subset(town: Town, indices: np.ndarray):
    """Return some of the town's blocks dissolved."""
    return dissolve(town.blocks[indices], town.pad)


def random_node(town: Town, rng: np.random.Generator, reach: float = 0.8) -> np.ndarray:
    """Return a network node at a random bearing, reach × radius from the centre."""
    return bearing_vector(rng.uniform(0, 360)) * town.radius * reach


def heritage_ring(town: Town) -> np.ndarray:
    """Return the blocks outside the historic centre, which stays unwired (a hole)."""
    dist = np.hypot(*town.centres.T)
    # Wide enough that the streets' closing buffer cannot fill it in.
    return np.flatnonzero(dist >= max(1.6 * town.pitch, 0.35 * town.radius))


def full_fiber(town: Town, rng: np.random.Generator) -> list[Area]:
    """Return fiber over the whole town and a little beyond, and legacy cable on part of it."""
    cable = node_order(town, random_node(town, rng, 0.3))
    share = rng.uniform(0.3, 0.5)
    return [
        area(town, "fiber", "live", all_blocks(town, extra=25.0)),
        area(town, "cable", "live", subset(town, cable[: blocks_for_share(town, cable, share)])),
    ]


def partial_fiber(town: Town, rng: np.random.Generator, ring: bool = False) -> list[Area]:
    """Return live fiber on a contiguous part, DSL everywhere and planned fiber on part of the rest."""
    if town.slug == PECHORY:
        node, share = bearing_vector(PECHORY_FIBER_BEARING) * town.radius * 0.8, PECHORY_FIBER_SHARE
    else:
        node, share = random_node(town, rng), rng.uniform(0.3, 0.7)
    order = node_order(town, node)
    if ring:
        live = heritage_ring(town)
    else:
        live = order[: blocks_for_share(town, order, share)]
    rest = order[~np.isin(order, live)]
    areas = [
        area(town, "fiber", "live", subset(town, live)),
        area(town, "dsl", "live", all_blocks(town)),
    ]
    if ring or town.slug == PECHORY or rng.random() < 0.7:
        planned = rest[: max(1, len(rest) // 2)] if not ring else rest
        areas.append(area(town, "fiber", "planned", subset(town, planned), planned_date(rng)))
    if town.population >= 10000 and rng.random() < 0.5:
        cable = node_order(town, random_node(town, rng, 0.2))
        areas.append(area(town, "cable", "live", subset(town, cable[: blocks_for_share(town, cable, 0.4)])))
    return areas


def planned_fiber(town: Town, rng: np.random.Generator, ring: bool = False) -> list[Area]:
    """Return DSL on the whole town and fiber planned for part or all of it."""
    if ring:
        planned = heritage_ring(town)
    else:
        order = node_order(town, random_node(town, rng))
        planned = order[: blocks_for_share(town, order, rng.uniform(0.4, 1.0))]
    return [
        area(town, "dsl", "live", all_blocks(town)),
        area(town, "fiber", "planned", subset(town, planned), planned_date(rng)),
    ]


def dsl_only(town: Town, rng: np.random.Generator) -> list[Area]:
    """Return DSL within reach of the exchange: the whole town or the part near it."""
    order = node_order(town, random_node(town, rng, 0.4))
    share = 1.0 if rng.random() < 0.5 else rng.uniform(0.5, 0.9)
    count = len(order) if share >= 1.0 else blocks_for_share(town, order, share)
    return [area(town, "dsl", "live", subset(town, order[:count]))]


def wireless_only(town: Town, rng: np.random.Generator) -> list[Area]:
    """Return fixed wireless from a mast at the town's edge, reaching into the fields around."""
    bearing = rng.uniform(0, 360)
    tower = -bearing_vector(bearing) * town.radius * rng.uniform(0.6, 1.0)
    width = rng.uniform(110, 170)
    reach = 2 * town.radius + rng.uniform(1200, 2500)
    return [area(town, "wireless", "live", sector(rng, tower, bearing, width, reach))]


BUILDERS = {
    "full_fiber": full_fiber,
    "partial_fiber": partial_fiber,
    "planned_fiber": planned_fiber,
    "dsl_only": dsl_only,
    "wireless_only": wireless_only,
    "none": lambda town, rng: [],
}


# ---------------------------------------------------------------- profiles


def fiber_probability(population: int) -> float:
    """Return how likely a town is to have fiber: bigger towns more so."""
    score = math.log10(population + 10)  # 0 -> 1.0, 3,000 -> 3.5, 24,500 -> 4.4
    return min(0.9, max(0.05, (score - 2.5) / 2.0))


def assign_profiles(towns: list[Town]) -> tuple[dict[str, str], set[str]]:
    """Return each real town's profile and the towns whose fiber rings a historic centre."""
    rng = np.random.default_rng(SEED)
    profiles = {}
    for town in sorted(towns, key=lambda t: (-t.population, t.slug)):
        # Draw for every town, fixed ones included, so overrides do not shift the others.
        u_fiber, u_kind = rng.random(2)
        if u_fiber < fiber_probability(town.population):
            profile = "partial_fiber" if u_kind < 0.6 else "planned_fiber"
        elif town.population == 0:
            profile = "dsl_only" if u_kind < 0.3 else "wireless_only" if u_kind < 0.6 else "none"
        else:
            profile = "dsl_only" if u_kind < 0.5 else "wireless_only" if u_kind < 0.75 else "none"
        profiles[town.slug] = profile
    for slug in FULL_FIBER_TOWNS:
        profiles[slug] = "full_fiber"
    profiles[PECHORY] = "partial_fiber"
    fiber_towns = [
        t for t in sorted(towns, key=lambda t: (-t.population, t.slug))
        if profiles[t.slug] in ("partial_fiber", "planned_fiber") and t.slug != PECHORY and t.kind != "village"
    ]
    rings = {t.slug for t in fiber_towns[:HOLE_TOWNS]}
    missing = set(PROFILES) - set(profiles.values())
    if missing or len(rings) < HOLE_TOWNS:
        raise RuntimeError(f"seed {SEED} misses profiles {sorted(missing)} or ring towns")
    return profiles, rings
