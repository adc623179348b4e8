"""Build the demo database from ``geodata/`` through the same functions staff imports use."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

from portal.config import GEODATA_DIR
from portal.data import db, imports, layers, migrations
from portal.data.engines import holds_portal
from portal.data.pgportal import BUILD_LOCK_KEY, BuildRefused, reach_or_refuse
from portal.incidents import demo as demo_incidents

BUILD_AUTHOR = "build_db"


def build_database(path: Path | str, geodata_dir: Path = GEODATA_DIR, now: datetime | None = None) -> None:
    """Write a fresh database at ``path`` from ``geodata_dir`` (replacing any database there).

    The database is built beside the target. A new target is that file moved into place
    (after removing any ``-wal``/``-shm`` a deleted database left there); an existing one gets
    the new content copied in (``_copy_into``), so a portal that is serving sees the old data
    or the new, never a half-built database. A ``postgresql://`` URL: ``_build_into_postgres``.
    """
    if "://" in str(path):
        _build_into_postgres(str(path), Path(geodata_dir), now)
        return
    path = Path(path)
    geodata_dir = Path(geodata_dir)
    now = now or db.utcnow()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.building-{os.getpid()}")
    for leftover in (tmp, *_wal_files(tmp)):
        leftover.unlink(missing_ok=True)
    try:
        migrations.migrate(tmp)
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
            # Layer ids start again at 1 in every build: this says which build they belong to.
            db.set_meta(conn, "build_id", uuid.uuid4().hex)
            demo_file = geodata_dir / "incidents.json"
            if demo_file.exists():
                demo_incidents.load_demo(conn, demo_file, now)
        # Fold the WAL into the file so one file is the whole database, and close the
        # connection before the file moves (``with`` alone would leave it open).
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        if not _copy_into(tmp, path):
            # Nothing to copy into. A write-ahead log and its index left beside the path (a
            # database deleted after a crash) would be read against the new file: they go first.
            for leftover in _wal_files(path):
                leftover.unlink(missing_ok=True)
            os.replace(tmp, path)
    finally:
        for leftover in (tmp, *_wal_files(tmp)):
            leftover.unlink(missing_ok=True)


def _wal_files(path: Path) -> tuple[Path, Path]:
    """Return the write-ahead log and its index that SQLite keeps beside a WAL database."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def _copy_into(built: Path, path: Path) -> bool:
    """Copy a built database over the database at ``path`` in one transaction; False if there is none.

    Moving a file over a database in use is unsafe in WAL mode: connections opened afterwards
    read the old database's write-ahead log against the new file, and those already open
    keep reading the old file. Copied in with SQLite's backup API, the new content is one
    commit like any other: every reader sees the old data or the new and notices the change
    on its next statement. The revision continues from the old database's, so no validator
    or cache entry made for the old data matches the new.
    """
    if not path.exists():
        return False
    target = sqlite3.connect(path, timeout=30)
    try:
        try:
            tables = {row[0] for row in target.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            return False  # not a database: nobody can be reading it, so moving the file is safe
        current = db.revision(target) if "meta" in tables else 0
        source = sqlite3.connect(built)
        try:
            with source:
                # Written now, as readers see it: Last-Modified never goes back to the build's
                # own writes, which a staff write may have followed.
                db.bump_revision(source, after=current)
            source.backup(target)
        finally:
            source.close()
    finally:
        target.close()
    return True


def _build_into_postgres(url: str, geodata_dir: Path, now: datetime | None = None) -> None:
    """Build in a temporary file and copy it into PostgreSQL in one transaction (replacing a portal there).

    As ``_copy_into`` does on SQLite: readers see the old data or the new, and the revision
    continues from the old portal's. The build lock keeps a node's first start from building
    the demo at the same time.
    """
    import tempfile

    from portal.data import transfer

    reach_or_refuse(url).close()  # refused before the build's work, not after
    with tempfile.TemporaryDirectory(prefix="portal-build-") as folder:
        built = Path(folder) / "portal.sqlite"
        build_database(built, geodata_dir, now)
        conn = reach_or_refuse(url)
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
            found = holds_portal(conn)
            source = sqlite3.connect(built)
            try:
                with source:
                    db.bump_revision(source, after=db.revision(conn) if found else 0)
            finally:
                source.close()
            try:
                transfer.move(str(built), url, replace=True)
            except (transfer.Refusal, transfer.CopyFailed) as exc:
                raise BuildRefused(str(exc)) from None
        finally:
            conn.close()


def _read(file: Path, kind: str):
    """Read one shipped layer, refusing it whole if any feature is unusable."""
    read = imports.read_layer(file, kind)
    if read.report["refused"]:
        raise ValueError(f"{file}: shipped data has unusable features: {read.report['refused'][:5]}")
    return read, file


def _migrate_if_pending(path: Path) -> None:
    """Apply migrations a database made by an older version lacks (under the build lock)."""
    import sqlite_utils

    found = sqlite_utils.Database(str(path))
    try:
        pending = migrations.MIGRATIONS.pending(found)
    finally:
        found.close()
    if pending:
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            migrations.migrate(path)


def ensure_database(path: Path | str, geodata_dir: Path = GEODATA_DIR) -> bool:
    """Build the database if the file does not exist yet (else apply pending migrations); True when built.

    A lock file keeps several workers starting at once from building it twice. A
    ``postgresql://`` URL: see ``ensure_postgres``.
    """
    if "://" in str(path):
        return ensure_postgres(str(path), geodata_dir)
    path = Path(path)
    if path.exists():
        _migrate_if_pending(path)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return False
        build_database(path, geodata_dir)
        return True


def ensure_postgres(url: str, geodata_dir: Path = GEODATA_DIR) -> bool:
    """Give an empty PostgreSQL database the demo portal; True when built, False when it holds one.

    The demo is built as every SQLite portal is, in a temporary folder, and copied over by
    ``migrate_db``'s own copy (``transfer.move``: checked, in one transaction). A portal an older
    version made gets the migrations it lacks (``pgupgrade.upgrade``, in one transaction); one a
    newer or another version made is refused (``OtherVersion``). An advisory lock keeps nodes
    starting at once from building or upgrading it twice.
    """
    import tempfile

    from portal.data import pgupgrade, portable, transfer

    conn = reach_or_refuse(url)
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
        if holds_portal(conn):
            pgupgrade.upgrade(conn)
            return False
        with tempfile.TemporaryDirectory(prefix="portal-demo-") as folder:
            demo = Path(folder) / "portal.sqlite"
            build_database(demo, geodata_dir)
            transfer.move(str(demo), url)  # refuses a database that holds other tables
        portable.reference()  # the statements need it anyway: made while the lock is held
        return True
    finally:
        conn.close()
