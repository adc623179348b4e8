"""Restore a backup into the live database, safely while the portal serves from it.

The obvious ways fail: a backup file copied over the live file is read by running
connections against the old write-ahead log ("database disk image is malformed"), and a
cold copy of the file alone misses commits still in its ``-wal``. So a restore never moves
files. The backup is checked (SQLite's integrity check, the portal's ``meta``), copied to a
work file, brought to the current schema, stamped (a revision after the live one, an audit
row) and then copied *into* the live database with SQLite's backup API: one commit, like
a rebuild (``portal.data.build``). Every reader sees the old data or the restored data,
never a mix, and every worker notices the change on its next request. The live data is
saved first, so a restore can itself be undone.

A PostgreSQL portal (a ``postgresql://`` URL) is backed up to the same kind of file, and
restored from one, by ``migrate_db``'s checked copy (``portal.data.transfer``): the backup is read
in one snapshot (``REPEATABLE READ``); the restore writes the stamped work file into the
database in one transaction, so readers see the old data or the restored data, never a mix
(they wait for the copy's commit). A backup file restores onto either engine.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import uuid
from pathlib import Path

from portal.data import audit, db, migrations
from portal.data.engines import Unreachable, describe, holds_portal, is_postgres, reach


class RestoreRefused(ValueError):
    """The backup cannot be restored; the message says why and what would be right. Nothing was changed."""


class BackupFailed(RuntimeError):
    """The copy could not be made or failed its check; nothing was written at the destination."""


def take_backup(source: str | Path, dest: Path) -> int:
    """Copy the live database (an SQLite file or a PostgreSQL URL) to the file ``dest``; return its revision.

    One consistent snapshot, taken while the portal serves and staff write. The copy appears
    at ``dest`` only once finished and checked (never half-written); an existing ``dest`` is replaced.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if is_postgres(str(source)):
            from portal.data import transfer

            try:
                transfer.move(str(source), str(partial))  # counts and geometries checked
            except (transfer.Refusal, transfer.CopyFailed) as exc:
                raise BackupFailed(f"the copy of {describe(str(source))} failed ({exc})") from None
        else:
            live = db.connect_readonly(source)
            try:
                out = sqlite3.connect(partial)
                try:
                    live.backup(out)  # readers and writers carry on; the copy is one snapshot
                    out.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
                finally:
                    out.close()
            finally:
                live.close()
        conn = sqlite3.connect(partial)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            revision = db.revision(conn)
        finally:
            conn.close()
        if ok != "ok":
            raise BackupFailed(f"the copy failed SQLite's integrity check ({ok})")
        partial.replace(dest)
        return revision
    finally:
        partial.unlink(missing_ok=True)


def check_backup(path: Path) -> int:
    """Return the backup's data revision, or refuse a file that is no sound portal database."""
    path = Path(path)
    if not path.is_file():
        raise RestoreRefused(f"backup {path}: no such file; give a file written by scripts/backup.py")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise RestoreRefused(f"backup {path} cannot be opened ({exc})") from None
    try:
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise RestoreRefused(f"backup {path} is not an SQLite database ({exc}); give a file written by"
                                 " scripts/backup.py") from None
        if ok != "ok":
            raise RestoreRefused(f"backup {path} fails SQLite's integrity check ({ok}); take another backup")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None:
            raise RestoreRefused(f"backup {path} is not a portal database (no meta table with a revision)")
        return int(row[0])
    finally:
        conn.close()


def restore(backup: Path, live: Path, *, author: str, keep: Path | None = None, create: bool = False) -> dict:
    """Copy ``backup`` into the live database at ``live``; return what was done.

    ``keep``: where to save the live data first (a consistent copy, like scripts/backup.py);
    None saves nothing. A missing ``live`` is refused unless ``create``.
    """
    if is_postgres(str(live)):
        return _restore_postgres(Path(backup), str(live), author=author, keep=keep)
    backup, live = Path(backup), Path(live)
    backed_up_revision = check_backup(backup)
    if backup.resolve() == live.resolve():
        raise RestoreRefused(f"backup {backup} is the live database itself; give a backup file")
    exists = live.exists()
    if not exists and not create:
        raise RestoreRefused(f"database {live} does not exist; give the portal's database (--db), or restore"
                             " into a new file on purpose with --create")
    if keep is not None and keep.exists():
        raise RestoreRefused(f"{keep} already exists; the live data would be saved there: give a new name")
    if not exists:
        live.parent.mkdir(parents=True, exist_ok=True)
    work = live.with_name(f".{live.name}.restoring-{os.getpid()}")
    for leftover in (work, *_wal_files(work)):
        leftover.unlink(missing_ok=True)
    try:
        _copy(backup, work)
        migrations.migrate(work)  # a backup from an older version gets today's schema
        work_conn = sqlite3.connect(work)
        try:
            work_conn.execute("PRAGMA journal_mode=DELETE")  # one file, for the copy below
        finally:
            work_conn.close()
        if not exists:
            _stamp(work, after=backed_up_revision, backup=backup, author=author, revision=backed_up_revision)
            for leftover in _wal_files(live):
                leftover.unlink(missing_ok=True)
            os.replace(work, live)
            return {"revision": backed_up_revision + 1, "backup_revision": backed_up_revision, "kept": None}
        target = sqlite3.connect(live, timeout=30)
        try:
            if keep is not None:
                take_backup(live, keep)
            # A write landing between this read and the copy may take the same revision number;
            # the new build id keeps the two apart (caches are keyed by ``db.data_key``).
            _stamp(work, after=db.revision(target), backup=backup, author=author, revision=backed_up_revision)
            source = sqlite3.connect(work)
            try:
                # One commit into the live file: readers see the old data or the restored data.
                source.backup(target)
            finally:
                source.close()
            revision = db.revision(target)
        finally:
            target.close()
        return {"revision": revision, "backup_revision": backed_up_revision, "kept": keep}
    finally:
        for leftover in (work, *_wal_files(work)):
            leftover.unlink(missing_ok=True)


def _restore_postgres(backup: Path, url: str, *, author: str, keep: Path | None) -> dict:
    """Restore a backup file into a PostgreSQL portal: the stamped work file copied in, one transaction."""
    from portal.data import transfer

    backed_up_revision = check_backup(backup)
    if keep is not None and keep.exists():
        raise RestoreRefused(f"{keep} already exists; the live data would be saved there: give a new name")
    try:
        conn = reach(url)
    except Unreachable as exc:
        raise RestoreRefused(f"{describe(url)}: {exc}") from None
    try:
        live_revision = db.revision(conn) if holds_portal(conn) else 0
    finally:
        conn.close()
    with tempfile.TemporaryDirectory(prefix="portal-restore-") as folder:
        work = Path(folder) / "restoring.sqlite"
        _copy(backup, work)
        migrations.migrate(work)  # a backup from an older version gets today's schema
        if keep is not None:
            try:
                take_backup(url, keep)
            except BackupFailed as exc:
                raise RestoreRefused(f"the live data could not be saved first ({exc}); nothing was restored"
                                     ) from None
        # A write landing between the read of the revision and the copy may take the same number;
        # the new build id keeps the two apart (caches are keyed by ``db.data_key``).
        _stamp(work, after=live_revision, backup=backup, author=author, revision=backed_up_revision)
        try:
            transfer.move(str(work), url, replace=True)
        except (transfer.Refusal, transfer.CopyFailed) as exc:
            raise RestoreRefused(f"the restore into {describe(url)} failed and changed nothing ({exc})"
                                 ) from None
    return {"revision": live_revision + 1, "backup_revision": backed_up_revision, "kept": keep}


def _copy(source: Path, dest: Path) -> None:
    """Copy a database with SQLite's backup API (the backup file is only read)."""
    src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


def _stamp(work: Path, *, after: int, backup: Path, author: str, revision: int) -> None:
    """Give the restored data a revision after the live one and an audit row saying where it came from."""
    conn = sqlite3.connect(work)
    try:
        with conn:
            db.bump_revision(conn, after=after)
            db.set_meta(conn, "build_id", uuid.uuid4().hex)
            audit.record(conn, author=author, action="database.restore", subject="database",
                         detail={"backup": str(backup), "backup_revision": revision, "replaced_revision": after})
    finally:
        conn.close()


def _wal_files(path: Path) -> tuple[Path, Path]:
    """Return the write-ahead log and its index beside a database."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")
