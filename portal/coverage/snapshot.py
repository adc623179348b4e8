"""The live data in memory: gazetteer and coverage index per layer version, incidents per data revision.

Every request asks for the snapshot of what it just read from ``meta``. A new import
changes the layer ids, so each worker process rebuilds the gazetteer and the coverage index
on its next request and never serves a stale layer. Any write (an incident update, an
import) changes the data revision (``db.data_key``), so the incidents are read again on the
next request, indexed with the towns the snapshot already holds; the coverage index is kept.
Built objects are shared by threads.
"""
from __future__ import annotations

import ctypes
import gc
import json
import sqlite3
import threading
from dataclasses import dataclass, replace

from portal.config import DEFAULTS
from portal.coverage.index import CoverageIndex
from portal.coverage.places import Gazetteer
from portal.data import db, layers
from portal.data.layers import Town
from portal.incidents.reads import IncidentReads


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
    incidents: IncidentReads  # of the data revision ``incidents.key``, with these towns


# The newest snapshot per database file: older layers and revisions are garbage.
_cache: dict[str, Snapshot] = {}
_lock = threading.Lock()


def snapshot(conn: sqlite3.Connection, db_path: str, drop_distance_m: float,
             deadline_hours: dict = DEFAULTS["RESTORE_DEADLINE_HOURS"]) -> Snapshot:
    """Return the snapshot of the live data, building what changed: layers, or only the incidents.

    ``deadline_hours`` are the contract's restoration deadlines (the ``RESTORE_DEADLINE_HOURS``
    setting).
    """
    # Asked on every request: the key is the layer ids as ``meta`` holds them, not parsed, and
    # the build they belong to (a rebuild numbers its layers from 1 again).
    meta = db.get_meta(conn)
    path = str(db_path)
    key = (path, meta.get("build_id"), meta.get("live_towns"), meta.get("live_coverage"), drop_distance_m)
    revision = db.data_key(meta)
    snap = _cache.get(path)
    if snap is not None and snap.key == key and _current(snap.incidents, revision, deadline_hours):
        return snap
    with _lock:
        snap = _cache.get(path)
        if snap is None or snap.key != key:
            # Let the old snapshot go before the new one is built: a worker would otherwise
            # hold two layers' indexes at once.
            _cache.pop(path, None)
            snap = None
            gc.collect()
            _return_free_memory()
            snap = _cache[path] = _build(conn, key, layers.layer_ids(meta), drop_distance_m, deadline_hours)
            # The index holds hundreds of thousands of long-lived objects; rescanning them in
            # every full collection showed as millisecond pauses at p99. Freeze them instead.
            gc.collect()
            gc.freeze()
            _return_free_memory()
        elif not _current(snap.incidents, revision, deadline_hours):
            incidents = IncidentReads.read(conn, snap.gazetteer, deadline_hours)
            snap = _cache[path] = replace(snap, incidents=incidents)
    return snap


def _current(incidents: IncidentReads, revision: str, deadline_hours: dict) -> bool:
    """Return whether the incidents were read at this data revision with these deadlines."""
    return incidents.key == revision and incidents.deadline_hours == deadline_hours


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


def _build(conn, key, ids, drop_distance_m, deadline_hours) -> Snapshot:
    """Load the live layers (the coverage a batch at a time) and the incidents, and index them."""
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
    gazetteer = Gazetteer(towns)
    return Snapshot(
        key=key,
        towns=towns,
        gazetteer=gazetteer,
        coverage=coverage,
        as_of=as_of,
        coverage_source=info.get("source") if info else None,
        region=_region_info(conn),
        incidents=IncidentReads.read(conn, gazetteer, deadline_hours),
    )


def _region_info(conn: sqlite3.Connection) -> dict:
    """Return the region's names and flags from ``meta`` (set by the demo build)."""
    meta = db.get_meta(conn)
    return {k: (json.loads(v) if k == "demo" else v) for k, v in meta.items()
            if k == "demo" or k.startswith(("region", "provider"))}
