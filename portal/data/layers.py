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

import shapely

from portal.data import db

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
) -> int:
    """Store a whole layer and make it live; return its id.

    Call inside ``db.writing``: the caller's transaction makes the switch atomic.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {', '.join(KINDS)}")
    replaced = live_layer_ids(conn)[kind]
    cur = conn.execute(
        "INSERT INTO layers (kind, created_at, author, source, checksum, feature_count, as_of,"
        " report, replaced_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            created_at or db.iso(db.utcnow()),
            author,
            source,
            checksum,
            len(features),
            as_of,
            json.dumps(report, ensure_ascii=False) if report is not None else None,
            replaced,
        ),
    )
    layer_id = cur.lastrowid
    if kind == "towns":
        conn.executemany(
            "INSERT INTO towns (layer_id, slug, name, name_ru, population, lat, lon, alt_names, geom)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    layer_id, t.slug, t.name, t.name_ru, t.population, t.lat, t.lon,
                    json.dumps(list(t.alt_names), ensure_ascii=False), shapely.to_wkb(t.geometry),
                )
                for t in features
            ],
        )
    else:
        conn.executemany(
            "INSERT INTO coverage (layer_id, feature_id, technology, status, max_down_mbps,"
            " max_up_mbps, available_from, geom) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    layer_id, a.feature_id, a.technology, a.status, a.max_down_mbps,
                    a.max_up_mbps, a.available_from, shapely.to_wkb(a.geometry),
                )
                for a in features
            ],
        )
    db.set_meta(conn, f"live_{kind}", str(layer_id))
    return layer_id


def activate_layer(conn: sqlite3.Connection, layer_id: int) -> str:
    """Make a stored layer live again (a rollback); return its kind."""
    row = conn.execute("SELECT kind FROM layers WHERE id = ?", (layer_id,)).fetchone()
    if row is None:
        raise LookupError(f"no layer with id {layer_id}")
    db.set_meta(conn, f"live_{row['kind']}", str(layer_id))
    return row["kind"]


def load_towns(conn: sqlite3.Connection, layer_id: int | None = None) -> list[Town]:
    """Return the towns of a layer (default: the live one), ordered by name."""
    if layer_id is None:
        layer_id = live_layer_ids(conn)["towns"]
    if layer_id is None:
        return []
    rows = conn.execute(
        "SELECT slug, name, name_ru, population, lat, lon, alt_names, geom FROM towns"
        " WHERE layer_id = ? ORDER BY name", (layer_id,)
    ).fetchall()
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
    cursor = conn.execute(
        "SELECT feature_id, technology, status, max_down_mbps, max_up_mbps, available_from, geom"
        " FROM coverage WHERE layer_id = ? ORDER BY id", (layer_id,)
    )
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


def layer_info(conn: sqlite3.Connection, layer_id: int) -> dict | None:
    """Return one layer's record (without its features)."""
    row = conn.execute("SELECT * FROM layers WHERE id = ?", (layer_id,)).fetchone()
    return dict(row) if row else None
