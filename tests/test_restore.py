"""Backup and restore: a backup taken during writes, restored while the portal serves, loses no committed
write.

On both engines: the backup is an SQLite file either way, restored onto an SQLite file or into
a PostgreSQL database (``db_target``: the test's own copy of the demo on the engine under test).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from enginetools import contents, missing_database

from portal import create_app
from portal.data import statements as sql
from portal.incidents import writes

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args) -> subprocess.CompletedProcess:
    """Run a staff script in a real process."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT.parent, env={**os.environ, "PORTAL_AUTHOR": "olga"})


def incident_ids(target) -> set[int]:
    """Return the ids of the incidents in a database (a file or a URL)."""
    with closing(sql.connect(target)) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM incidents")}


def kept_copies(folder: Path) -> list[Path]:
    """Return the copies of the live data a restore saved first (beside the file, or beside the backup)."""
    return [p for p in folder.iterdir() if "before-restore-" in p.name]


def test_a_backup_taken_during_writes_restores_every_write_committed_before_it(db_target, tmp_path):
    db_path = db_target
    start = max(incident_ids(db_path))
    committed: list[tuple[int, float]] = []  # (id, when its commit returned)
    stop = threading.Event()

    def write_incidents():
        while not stop.is_set():
            incident_id = writes.open_incident(db_path, title=f"Write {len(committed)}", services=["internet"],
                                               towns=["pechory"], author="writer")
            committed.append((incident_id, time.monotonic()))

    writer = threading.Thread(target=write_incidents)
    writer.start()
    try:
        while len(committed) < 20:
            time.sleep(0.01)
        began = time.monotonic()
        backup = run("backup.py", tmp_path / "during.sqlite", "--db", db_path)
        while len(committed) < len([c for c in committed if c[1] < began]) + 20:
            time.sleep(0.01)  # writes go on after the backup too: the restore must drop them
    finally:
        stop.set()
        writer.join()
    assert backup.returncode == 0, backup.stderr
    before_backup = {i for i, at in committed if at < began}
    in_backup = incident_ids(tmp_path / "during.sqlite") - set(range(1, start + 1))
    assert before_backup <= in_backup  # every write committed before the backup began is in it
    assert in_backup == set(range(start + 1, start + 1 + len(in_backup)))  # a prefix: no torn write

    app = create_app({"DATABASE": str(db_path)})
    client = app.test_client()
    after_backup = max(i for i, _ in committed)
    assert client.get(f"/api/v1/incidents/{after_backup}").status_code == 200  # the app is serving
    restored = run("restore.py", tmp_path / "during.sqlite", "--db", db_path)
    assert restored.returncode == 0, restored.stderr
    assert incident_ids(db_path) == set(range(1, start + 1)) | in_backup
    # The same app, on its open connection, serves the restored data from its next request.
    assert client.get(f"/api/v1/incidents/{max(in_backup)}").status_code == 200
    if after_backup not in in_backup:
        assert client.get(f"/api/v1/incidents/{after_backup}").status_code == 404
    with closing(sql.connect(db_path)) as conn:
        if sql.dialect_of(conn) == sql.SQLITE:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        audit = conn.execute("SELECT author, action FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert tuple(audit) == ("olga", "database.restore")
    # The live data was saved first: the restore itself can be undone.
    kept = kept_copies(tmp_path)
    assert len(kept) == 1 and incident_ids(kept[0]) >= {i for i, _ in committed}


def test_a_restored_database_gets_a_new_validator_so_no_cache_serves_the_old_answers(db_target, tmp_path):
    db_path = db_target
    app = create_app({"DATABASE": str(db_path)})
    client = app.test_client()
    assert run("backup.py", tmp_path / "b.sqlite", "--db", db_path).returncode == 0
    etag = client.get("/api/v1/summary").headers["ETag"]
    assert run("restore.py", tmp_path / "b.sqlite", "--db", db_path, "--no-keep").returncode == 0
    again = client.get("/api/v1/summary", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    for part in (path, Path(f"{path}-wal")):
        # A read-only open of a WAL database may create an empty log beside it: no frame, no change.
        digest.update(part.read_bytes() if part.exists() else b"")
    return digest.hexdigest()


def test_a_bad_backup_is_refused_and_the_live_database_is_untouched(db_target, engine, tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    bad = [(tmp_path / "missing.sqlite", "no such file"), (not_a_db, "not an SQLite database"),
           (empty, "not a portal database")]

    def state():  # the file's very bytes on SQLite; every row on PostgreSQL
        return _hash(Path(db_target)) if engine == "sqlite" else contents(db_target)

    if engine == "sqlite":
        bad.append((db_target, "is the live database itself"))
    before = state()
    for backup, words in bad:
        result = run("restore.py", backup, "--db", db_target)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert state() == before
    assert not kept_copies(tmp_path)


def test_restore_onto_a_new_machine_needs_create(db_target, engine, tmp_path, request):
    assert run("backup.py", tmp_path / "b.sqlite", "--db", db_target).returncode == 0
    new = tmp_path / "new"
    new.mkdir()
    target = missing_database(engine, new, request)  # no file yet, or an empty PostgreSQL database
    refused = run("restore.py", tmp_path / "b.sqlite", "--db", target)
    said = "no such file" if engine == "sqlite" else "not a portal database"
    assert refused.returncode == 2 and said in refused.stderr, refused.stderr
    assert list(new.iterdir()) == []
    done = run("restore.py", tmp_path / "b.sqlite", "--db", target, "--create")
    assert done.returncode == 0, done.stderr
    assert incident_ids(target) == incident_ids(db_target)
    assert not kept_copies(tmp_path)  # nothing was there to keep


def test_a_backup_of_either_engine_restores_onto_the_other(db_target, engine, tmp_path, request):
    title = "Обрыв на Лесной"
    writes.open_incident(db_target, title=title, services=["internet"], towns=["pechory"], author="ops")
    assert run("backup.py", tmp_path / "b.sqlite", "--db", db_target).returncode == 0
    other = missing_database("postgresql" if engine == "sqlite" else "sqlite", tmp_path, request)
    done = run("restore.py", tmp_path / "b.sqlite", "--db", other, "--create")
    assert done.returncode == 0, done.stderr
    assert incident_ids(other) == incident_ids(db_target)
    with closing(sql.connect(other)) as conn:
        assert conn.execute("SELECT title FROM incidents ORDER BY id DESC LIMIT 1").fetchone()[0] == title
