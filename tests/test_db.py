"""Read connections: meta kept until another connection commits; one version of the data per web request.

The tests of SQLite's own read connection (``PRAGMA data_version``, the write-ahead log and its
``-shm`` lock, the journal mode) run on SQLite; the others on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from dbtools import database_with_towns, square_town

from portal.data import db
from portal.data import statements as sql
from portal.web import caching
from portal.web import request as web


def _db(tmp_path):
    return database_with_towns(tmp_path / "meta.sqlite", [square_town("alpha", "Alpha", 30.0, 60.0)])


def test_meta_is_read_again_only_after_another_connection_commits(tmp_path):
    path = _db(tmp_path)
    reader = db.connect_readonly(path)
    first = db.revision(reader)
    reads = []
    reader.set_trace_callback(reads.append)
    assert db.revision(reader) == first
    assert reads == ["PRAGMA data_version"]  # meta itself was not read again
    with db.writing(path):
        pass  # a write bumps the revision
    assert db.revision(reader) == first + 1
    assert any("FROM meta" in sql for sql in reads)
    reader.close()


def test_every_write_notes_when_it_happened(db_target):
    with closing(sql.connect(db_target)) as conn:
        db.set_meta(conn, "written_at", "0")  # autocommit: long ago, whatever the build noted
    with db.writing(db_target):
        pass
    with closing(sql.connect(db_target)) as conn:
        written = int(db.get_meta(conn)["written_at"])
    assert abs(written - db.utcnow().timestamp()) < 60


def test_a_commit_after_the_log_restarts_is_noticed(tmp_path):
    path = _db(tmp_path)
    reader = db.connect_readonly(path)
    first = db.revision(reader)
    writer = sqlite3.connect(path)
    # Copy the log into the file and empty it: the next commit writes the log from its start again.
    assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    writer.close()
    assert db.revision(reader) == first
    with db.writing(path):
        pass
    assert db.revision(reader) == first + 1
    reader.close()


def test_a_database_not_in_wal_mode_is_followed_too(tmp_path):
    path = _db(tmp_path)
    writer = sqlite3.connect(path)
    assert writer.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    writer.close()
    reader = db.connect_readonly(path)
    first = db.revision(reader)
    for n in (1, 2):
        with db.writing(path):
            pass
        assert db.revision(reader) == first + n
    reader.close()


def test_a_request_reads_one_version_of_the_data_and_the_next_request_the_new_one(app):
    # A write that commits while a page is being built must not give the page the new data's
    # ETag: a cache would then keep the old body under the new name.
    with app.test_request_context("/api/v1/summary"):
        before = db.data_key(db.get_meta(web.get_db()))
        with db.writing(app.config["DATABASE"]):
            pass
        assert db.data_key(db.get_meta(web.get_db())) == before
        assert caching.validators()[0].startswith(f'W/"{before}-')
    with app.test_request_context("/api/v1/summary"):
        after = db.data_key(db.get_meta(web.get_db()))
        assert after != before
        assert caching.validators()[0].startswith(f'W/"{after}-')


def _locked_by_this_process(path: Path) -> bool:
    """Return whether this process holds a POSIX lock on the file (Linux's /proc/locks)."""
    found = os.stat(path)
    ident = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "POSIX" in fields and str(os.getpid()) in fields and ident in fields:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_a_request_keeps_sqlites_own_lock_on_the_wal_index(app, db_path, client):  # SQLite's -shm file
    # SQLite holds a read lock on the -shm file to tell other processes that its WAL-index is
    # in use; if anything in the process closes another descriptor of that file, the lock is
    # gone and the next writer resets the WAL-index under the readers' memory maps (SIGBUS).
    client.get("/api/v1/summary")  # the portal has read the database before
    with app.test_request_context("/api/v1/check?lat=57.8&lon=28.33"):
        response = app.full_dispatch_request()
        assert response.status_code == 200
        shm = Path(f"{db_path}-shm")
        assert shm.exists()
        assert _locked_by_this_process(shm)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_opens_its_own_connection_and_leaves_its_parents_alone(app, client):
    # A pre-forking server forks after the app may have served (or warmed up) in the parent:
    # SQLite connections must not be used across fork.
    assert client.get("/api/v1/summary").status_code == 200
    with app.app_context():
        parents = web._connection(app.config["DATABASE"])
    pid = os.fork()
    if pid == 0:  # the child: answer, with a connection of its own
        try:
            ok = client.get("/api/v1/summary").status_code == 200
            with app.app_context():
                ok = ok and web._connection(app.config["DATABASE"]) is not parents
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.get("/api/v1/summary").status_code == 200
    with app.app_context():
        assert web._connection(app.config["DATABASE"]) is parents
    assert parents.execute("SELECT count(*) FROM meta").fetchone()[0] > 0
