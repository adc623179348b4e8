"""The live layers in memory: gazetteer and coverage index, built once per layer version.

Every request asks for the snapshot of the layer ids it just read from ``meta``;
a new import changes those ids, so each worker process rebuilds on its next
request and never serves a stale layer. Built objects are shared by threads.
"""
from __future__ import annotations

import ctypes
import gc
import json
import sqlite3
import threading
from dataclasses import dataclass

from portal.coverage.index import CoverageIndex
from portal.coverage.places import Gazetteer
from portal.data import db, layers
from portal.data.layers import Town


@dataclass(frozen=True)
class Snapshot:
    """What the pages need of the live layers."""

    key: tuple
    towns: list[Town]
    gazetteer: Gazetteer
    coverage: CoverageIndex
    as_of: str | None
    coverage_source: str | None
    region: dict  # region and provider names from meta, written by the same build as the layers


_cache: dict[tuple, Snapshot] = {}
_lock = threading.Lock()


def snapshot(conn: sqlite3.Connection, db_path: str, drop_distance_m: float) -> Snapshot:
    """Return the snapshot of the live layers, building it if they changed."""
    # Asked on every request: the key is the layer ids as ``meta`` holds them, not parsed, and
    # the build they belong to (a rebuild numbers its layers from 1 again).
    meta = db.get_meta(conn)
    key = (str(db_path), meta.get("build_id"), meta.get("live_towns"), meta.get("live_coverage"),
           drop_distance_m)
    snap = _cache.get(key)
    if snap is not None:
        return snap
    with _lock:
        snap = _cache.get(key)
        if snap is None:
            # Keep only the newest snapshot per database, and let the old one go before the
            # new one is built: a worker would otherwise hold two layers' indexes at once.
            for old in [k for k in _cache if k[0] == key[0]]:
                del _cache[old]
            gc.collect()
            _return_free_memory()
            snap = _build(conn, key, layers.layer_ids(meta), drop_distance_m)
            _cache[key] = snap
            # The index holds hundreds of thousands of long-lived objects; rescanning them in
            # every full collection showed as millisecond pauses at p99. Freeze them instead.
            gc.collect()
            gc.freeze()
            _return_free_memory()
    return snap


def _return_free_memory() -> None:
    """Give the heap freed by the build back to the system (glibc only; elsewhere a no-op).

    Building reads every polygon as GEOS objects a batch at a time (freed again); glibc keeps
    freed heap mapped, so each worker would carry it.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _build(conn, key, ids, drop_distance_m) -> Snapshot:
    """Load the live layers and index them, reading the coverage a batch at a time."""
    towns = layers.load_towns(conn, ids["towns"])
    # Shares stored with the layers; a database from before they were stored has none, and
    # the index then measures them itself when first asked.
    shares = layers.load_town_shares(conn, ids["towns"], ids["coverage"])
    coverage = CoverageIndex.streamed(layers.iter_coverage(conn, ids["coverage"]), towns,
                                      drop_distance_m=drop_distance_m, shares=shares,
                                      vertices=layers.coverage_vertex_bound(conn, ids["coverage"]))
    info = layers.layer_info(conn, ids["coverage"]) if ids["coverage"] else None
    as_of = None
    if info:
        as_of = info.get("as_of") or (info.get("created_at") or "")[:10] or None
    return Snapshot(
        key=key,
        towns=towns,
        gazetteer=Gazetteer(towns),
        coverage=coverage,
        as_of=as_of,
        coverage_source=info.get("source") if info else None,
        region=_region_info(conn),
    )


def _region_info(conn: sqlite3.Connection) -> dict:
    """Return the region's names and flags from ``meta`` (set by the demo build)."""
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'region%' OR key = 'demo'"
                             " OR key LIKE 'provider%'").fetchall())
    return {k: (json.loads(v) if k == "demo" else v) for k, v in rows.items()}
