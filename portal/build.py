"""Build the demo database from ``geodata/`` through the same functions staff imports use."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from . import db, demo_incidents, imports, layers
from .config import GEODATA_DIR

BUILD_AUTHOR = "build_db"


def build_database(path: Path, geodata_dir: Path = GEODATA_DIR, now: datetime | None = None) -> None:
    """Write a fresh database at ``path`` from ``geodata_dir`` (replacing any file there).

    The file is built beside the target and moved into place, so a portal
    that is serving never sees a half-built database.
    """
    path = Path(path)
    geodata_dir = Path(geodata_dir)
    now = now or db.utcnow()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.building-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    try:
        db.migrate(tmp)
        meta = json.loads((geodata_dir / "meta.json").read_text(encoding="utf-8"))
        towns = _read(geodata_dir / "towns.geojson", "towns")
        coverage = _read(geodata_dir / "coverage.geojson", "coverage")
        with db.writing(tmp) as conn:
            for kind, (read, file) in (("towns", towns), ("coverage", coverage)):
                layers.store_layer(
                    conn, kind, read.features, source=f"geodata/{file.name}", author=BUILD_AUTHOR,
                    checksum=hashlib.sha256(file.read_bytes()).hexdigest(),
                    as_of=meta.get("as_of"), report=read.report, created_at=db.iso(now),
                )
            for key in ("region", "region_ru", "timezone", "provider", "provider_ru"):
                if meta.get(key):
                    db.set_meta(conn, key, meta[key])
            db.set_meta(conn, "demo", json.dumps(bool(meta.get("demo"))))
            demo_file = geodata_dir / "incidents.json"
            if demo_file.exists():
                demo_incidents.load_demo(conn, demo_file, now)
        # Fold the WAL into the file so one file is the whole database.
        with sqlite3.connect(tmp) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def _read(file: Path, kind: str):
    """Read one shipped layer, refusing it whole if any feature is unusable."""
    read = imports.read_layer(file, kind)
    if read.report["refused"]:
        raise ValueError(f"{file}: shipped data has unusable features: {read.report['refused'][:5]}")
    return read, file


def ensure_database(path: Path, geodata_dir: Path = GEODATA_DIR) -> bool:
    """Build the database if the file does not exist yet; return True when it was built.

    A lock file keeps several workers starting at once from building it twice.
    """
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return False
        build_database(path, geodata_dir)
        return True
