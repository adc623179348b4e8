"""Backup and restore: a backup taken during writes, restored while the portal serves, loses no committed write."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from portal import create_app
from portal.data import db
from portal.incidents import writes

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args) -> subprocess.CompletedProcess:
    """Run a staff script in a real process."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT.parent, env={**os.environ, "PORTAL_AUTHOR": "olga"})


def incident_ids(path) -> set[int]:
    """Return the ids of the incidents in a database."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM incidents")}
    finally:
        conn.close()


def test_a_backup_taken_during_writes_restores_every_write_committed_before_it(db_path, tmp_path):
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
    conn = db.connect_readonly(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        audit = conn.execute("SELECT author, action FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    assert tuple(audit) == ("olga", "database.restore")
    # The live data was saved first: the restore itself can be undone.
    kept = [p for p in tmp_path.iterdir() if ".before-restore-" in p.name]
    assert len(kept) == 1 and incident_ids(kept[0]) >= {i for i, _ in committed}


def test_a_restored_database_gets_a_new_validator_so_no_cache_serves_the_old_answers(db_path, tmp_path):
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


def test_a_bad_backup_is_refused_and_the_live_database_is_untouched(db_path, tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    before = _hash(db_path)
    for backup, words in ((tmp_path / "missing.sqlite", "no such file"), (not_a_db, "not an SQLite database"),
                          (empty, "not a portal database"), (db_path, "is the live database itself")):
        result = run("restore.py", backup, "--db", db_path)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert _hash(db_path) == before
    assert not [p for p in tmp_path.iterdir() if ".before-restore-" in p.name]


def test_restore_onto_a_new_machine_needs_create(db_path, tmp_path):
    assert run("backup.py", tmp_path / "b.sqlite", "--db", db_path).returncode == 0
    target = tmp_path / "new" / "portal.sqlite"
    refused = run("restore.py", tmp_path / "b.sqlite", "--db", target)
    assert refused.returncode == 2 and "no such file" in refused.stderr and not target.parent.exists()
    done = run("restore.py", tmp_path / "b.sqlite", "--db", target, "--create")
    assert done.returncode == 0, done.stderr
    assert incident_ids(target) == incident_ids(db_path)
