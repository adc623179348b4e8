"""Versioned data layers (towns, coverage): store a new one, read the live one, roll back.

A layer is stored whole under a new ``layers.id``; ``meta`` names the live
layer of each kind. Switching the pointer is what makes a layer public, so
an import, a rollback and the demo build all land in one transaction.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import shapely
import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql

KINDS = ("towns", "coverage")
# Coverage rows read at a time when a layer is streamed (a few MB of polygons).
BATCH = 5_000
TECHNOLOGIES = ("fiber", "cable", "dsl", "wireless")
COVERAGE_STATUSES = ("live", "planned")


@dataclass(frozen=True)
class Town:
    """A locality of the gazetteer with its extent polygon (WGS 84)."""

    slug: str
    name: str
    name_ru: str | None
    population: int | None
    lat: float
    lon: float
    geometry: shapely.Geometry
    alt_names: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Area:
    """One coverage polygon of one technology (WGS 84)."""

    technology: str
    status: str
    geometry: shapely.Geometry
    max_down_mbps: float | None = None
    max_up_mbps: float | None = None
    available_from: str | None = None
    feature_id: str | None = None


def live_layer_ids(conn: sqlite3.Connection) -> dict[str, int | None]:
    """Return ``{"towns": id, "coverage": id}`` of the live layers (None when absent)."""
    return layer_ids(db.get_meta(conn))


def layer_ids(meta) -> dict[str, int | None]:
    """Return the live layer ids that a ``meta`` mapping names."""
    return {kind: int(meta[f"live_{kind}"]) if f"live_{kind}" in meta else None for kind in KINDS}


def store_layer(
    conn: sqlite3.Connection,
    kind: str,
    features: list,
    *,
    source: str,
    author: str,
    checksum: str | None = None,
    as_of: str | None = None,
    report: dict | None = None,
    created_at: str | None = None,
    shares: tuple[int, dict] | None = None,
) -> int:
    """Store a whole layer and make it live, with the town shares of the new pair of layers; return its id.

    Call inside ``db.writing``: the caller's transaction makes the switch atomic. ``shares``
    are share entries measured beforehand (``portal.coverage.index.town_shares``) against the
    live layer of the other kind, as (that layer's id, entries by slug); they are used if that
    layer is still the live one, else the shares are measured here.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {', '.join(KINDS)}")
    replaced = live_layer_ids(conn)[kind]
    q = _statements()
    layer_id = sql.scalar(
        conn, q.new_layer, kind=kind, created_at=created_at or db.iso(db.utcnow()), author=author,
        source=source, checksum=checksum, feature_count=len(features), as_of=as_of,
        report=json.dumps(report, ensure_ascii=False) if report is not None else None, replaced_id=replaced)
    if kind == "towns":
        sql.run_many(conn, q.new_town, [
            {"layer_id": layer_id, "slug": t.slug, "name": t.name, "name_ru": t.name_ru,
             "population": t.population, "lat": t.lat, "lon": t.lon,
             "alt_names": json.dumps(list(t.alt_names), ensure_ascii=False), "geom": shapely.to_wkb(t.geometry)}
            for t in features])
    else:
        sql.run_many(conn, q.new_area, [
            {"layer_id": layer_id, "feature_id": a.feature_id, "technology": a.technology, "status": a.status,
             "max_down_mbps": a.max_down_mbps, "max_up_mbps": a.max_up_mbps, "available_from": a.available_from,
             "geom": shapely.to_wkb(a.geometry)}
            for a in features])
    db.set_meta(conn, f"live_{kind}", str(layer_id))
    ids = live_layer_ids(conn)
    other = ids["coverage" if kind == "towns" else "towns"]
    if other is not None and has_town_shares_table(conn):
        measured = shares[1] if shares is not None and shares[0] == other else None
        if measured is None:
            measured = measure_town_shares(conn, towns=features if kind == "towns" else None,
                                           areas=features if kind == "coverage" else None)
        store_town_shares(conn, ids["towns"], ids["coverage"], measured)
    if kind == "coverage":
        _coverage_switched(conn, replaced, features)
    return layer_id


def _coverage_switched(conn: sqlite3.Connection, before: int | None, after) -> None:
    """Record, in the switch's own transaction, whom new coverage must be told to (``listening.arrival``)."""
    from portal.listening import arrival  # the listening side reads layers

    arrival.coverage_changed(conn, before, after)


def activate_layer(conn: sqlite3.Connection, layer_id: int) -> str:
    """Make a stored layer live again (a rollback); return its kind."""
    row = sql.run(conn, _statements().layer, id=layer_id).fetchone()
    if row is None:
        raise LookupError(f"no layer with id {layer_id}")
    was = live_layer_ids(conn)[row["kind"]]
    db.set_meta(conn, f"live_{row['kind']}", str(layer_id))
    ensure_town_shares(conn)
    if row["kind"] == "coverage" and was != layer_id:
        _coverage_switched(conn, was, layer_id)
    return row["kind"]


def load_towns(conn: sqlite3.Connection, layer_id: int | None = None) -> list[Town]:
    """Return the towns of a layer (default: the live one), ordered by name."""
    if layer_id is None:
        layer_id = live_layer_ids(conn)["towns"]
    if layer_id is None:
        return []
    rows = sql.run(conn, _statements().towns, layer_id=layer_id).fetchall()
    geoms = shapely.from_wkb([r["geom"] for r in rows]) if rows else []
    return [
        Town(
            slug=r["slug"], name=r["name"], name_ru=r["name_ru"], population=r["population"],
            lat=r["lat"], lon=r["lon"], geometry=g, alt_names=tuple(json.loads(r["alt_names"])),
        )
        for r, g in zip(rows, geoms)
    ]


def load_coverage(conn: sqlite3.Connection, layer_id: int | None = None) -> list[Area]:
    """Return the coverage areas of a layer (default: the live one)."""
    return [a for batch in iter_coverage(conn, layer_id) for a in batch]


def iter_coverage(conn: sqlite3.Connection, layer_id: int | None = None,
                  batch: int = BATCH) -> Iterator[list[Area]]:
    """Yield the coverage areas of a layer (default: the live one) in order, ``batch`` at a time."""
    if layer_id is None:
        layer_id = live_layer_ids(conn)["coverage"]
    if layer_id is None:
        return
    cursor = sql.run(conn, _statements().areas, layer_id=layer_id)
    # One string object per distinct value, not one per row.
    word = sys.intern
    while rows := cursor.fetchmany(batch):
        geoms = shapely.from_wkb([r[6] for r in rows])
        yield [
            Area(
                technology=word(r[1]), status=word(r[2]), geometry=g,
                max_down_mbps=r[3], max_up_mbps=r[4],
                available_from=word(r[5]) if r[5] is not None else None, feature_id=r[0],
            )
            for r, g in zip(rows, geoms)
        ]
        del rows, geoms


def coverage_vertex_bound(conn: sqlite3.Connection, layer_id: int | None) -> int:
    """Return at least the number of vertices of a coverage layer's polygons (16 WKB bytes each)."""
    if layer_id is None:
        return 0
    return int(sql.scalar(conn, _statements().wkb_bytes, layer_id=layer_id) or 0) // 16


# -- town shares: measured when a layer is stored, per pair of towns and coverage layers --


def has_town_shares_table(conn: sqlite3.Connection) -> bool:
    """Return whether the database stores town shares (databases from before it do not)."""
    if sql.dialect_of(conn) != sql.SQLITE:
        return True  # a PostgreSQL portal is made with the whole schema (``portal.data.portable``)
    # Asked of SQLite's catalogue, which only SQLite has.
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'town_share_layers'")
    return found.fetchone() is not None


def measure_town_shares(conn: sqlite3.Connection, towns: list[Town] | None = None,
                        areas: list[Area] | None = None) -> dict[str, list[dict]]:
    """Return the share entries of towns over areas by slug (the live layers where not given)."""
    from portal.coverage.index import town_shares  # the index imports this module's records

    towns = load_towns(conn) if towns is None else towns
    areas = load_coverage(conn) if areas is None else areas
    return town_shares(areas, towns)


def store_town_shares(conn: sqlite3.Connection, towns_id: int, coverage_id: int,
                      shares: dict[str, list[dict]]) -> None:
    """Store (replacing) the share entries of a pair of layers."""
    q = _statements()
    pair = {"towns_layer_id": towns_id, "coverage_layer_id": coverage_id}
    sql.run(conn, q.drop_shares, **pair)
    sql.run(conn, q.shares_measured, **pair, measured_at=db.iso(db.utcnow()))
    sql.run_many(conn, q.new_share, [
        {**pair, "slug": slug, **{k: e[k] for k in SHARE_FIELDS}} for slug, entries in shares.items()
        for e in entries])


def load_town_shares(conn: sqlite3.Connection, towns_id: int | None,
                     coverage_id: int | None) -> dict[str, list[dict]] | None:
    """Return the stored share entries of a pair of layers by slug; None if they were never measured.

    A town that no area covers has no entries (and no key).
    """
    if towns_id is None or coverage_id is None or not has_town_shares_table(conn):
        return None
    q = _statements()
    pair = {"towns_layer_id": towns_id, "coverage_layer_id": coverage_id}
    if sql.run(conn, q.shares_known, **pair).fetchone() is None:
        return None
    shares: dict[str, list[dict]] = {}
    for r in sql.run(conn, q.shares, **pair):
        shares.setdefault(r[0], []).append({
            "technology": r[1], "status": r[2], "share": r[3], "max_down_mbps": r[4], "max_up_mbps": r[5],
            "available_from": r[6],
        })
    return shares


def ensure_town_shares(conn: sqlite3.Connection) -> None:
    """Measure and store the shares of the live pair of layers unless stored (inside ``db.writing``)."""
    ids = live_layer_ids(conn)
    if ids["towns"] is None or ids["coverage"] is None or not has_town_shares_table(conn):
        return
    if load_town_shares(conn, ids["towns"], ids["coverage"]) is None:
        store_town_shares(conn, ids["towns"], ids["coverage"], measure_town_shares(conn))


def layer_info(conn: sqlite3.Connection, layer_id: int) -> dict | None:
    """Return one layer's record (without its features)."""
    row = sql.run(conn, _statements().layer, id=layer_id).fetchone()
    return dict(row) if row else None


def all_layers(conn, kind: str | None = None) -> list[dict]:
    """Return the records of every stored layer (of a kind), oldest first."""
    q = _statements()
    rows = sql.run(conn, q.layers_of_kind, kind=kind) if kind else sql.run(conn, q.all_layers)
    return [dict(r) for r in rows]


SHARE_FIELDS = ("technology", "status", "share", "max_down_mbps", "max_up_mbps", "available_from")


@sql.collection
def _statements() -> SimpleNamespace:
    """Return this module's statements (``portal.data.statements``)."""
    layers, towns, coverage = sql.table("layers"), sql.table("towns"), sql.table("coverage")
    measured, shares = sql.table("town_share_layers"), sql.table("town_shares")
    value = sa.bindparam
    pair = (shares.c.towns_layer_id == value("towns_layer_id"),
            shares.c.coverage_layer_id == value("coverage_layer_id"))

    def wkb_bytes(dialect: str):
        geom = coverage.c.geom if dialect == sql.SQLITE else sa.func.ST_AsBinary(coverage.c.geom)
        return sa.select(sa.func.sum(sa.func.length(geom))).where(coverage.c.layer_id == value("layer_id"))

    return SimpleNamespace(
        new_layer=sql.Statement(sa.insert(layers).values({c: value(c) for c in (
            "kind", "created_at", "author", "source", "checksum", "feature_count", "as_of", "report",
            "replaced_id")}).returning(layers.c.id)),
        new_town=sql.Statement(sa.insert(towns).values({**{c: value(c) for c in (
            "layer_id", "slug", "name", "name_ru", "population", "lat", "lon", "alt_names")},
            "geom": sql.geometry_in(value("geom"))})),
        new_area=sql.Statement(sa.insert(coverage).values({**{c: value(c) for c in (
            "layer_id", "feature_id", "technology", "status", "max_down_mbps", "max_up_mbps",
            "available_from")}, "geom": sql.geometry_in(value("geom"))})),
        layer=sql.Statement(sa.select(layers).where(layers.c.id == value("id"))),
        all_layers=sql.Statement(sa.select(layers).order_by(layers.c.id)),
        layers_of_kind=sql.Statement(sa.select(layers).where(layers.c.kind == value("kind")).order_by(layers.c.id)),
        towns=sql.Statement(sa.select(
            towns.c.slug, towns.c.name, towns.c.name_ru, towns.c.population, towns.c.lat, towns.c.lon,
            towns.c.alt_names, sql.geometry_out(towns.c.geom)).where(towns.c.layer_id == value("layer_id"))
            .order_by(towns.c.name)),
        areas=sql.Statement(sa.select(
            coverage.c.feature_id, coverage.c.technology, coverage.c.status, coverage.c.max_down_mbps,
            coverage.c.max_up_mbps, coverage.c.available_from, sql.geometry_out(coverage.c.geom))
            .where(coverage.c.layer_id == value("layer_id")).order_by(coverage.c.id)),
        wkb_bytes=sql.Statement(wkb_bytes),
        drop_shares=sql.Statement(sa.delete(shares).where(*pair)),
        shares_measured=sql.Statement(sql.upsert(
            measured, ["towns_layer_id", "coverage_layer_id"],
            {c: value(c) for c in ("towns_layer_id", "coverage_layer_id", "measured_at")}, ["measured_at"])),
        new_share=sql.Statement(sa.insert(shares).values({c: value(c) for c in (
            "towns_layer_id", "coverage_layer_id", "slug", *SHARE_FIELDS)})),
        shares_known=sql.Statement(sa.select(sa.literal(1)).where(
            measured.c.towns_layer_id == value("towns_layer_id"),
            measured.c.coverage_layer_id == value("coverage_layer_id"))),
        # In the order stored, which is the entries' order (a column of that name on PostgreSQL:
        # ``portal.data.portable`` keeps SQLite's hidden row numbers there).
        shares=sql.Statement(sa.select(shares.c.slug, *(shares.c[f] for f in SHARE_FIELDS)).where(*pair)
                             .order_by(sa.literal_column("rowid"))),
    )
