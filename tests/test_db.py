"""Read connections: meta kept until another connection commits; one look per web request."""
from __future__ import annotations

import sqlite3

from dbtools import database_with_towns, square_town

from portal.data import db


def _db(tmp_path):
    return database_with_towns(tmp_path / "meta.sqlite", [square_town("alpha", "Alpha", 30.0, 60.0)])


def test_meta_is_read_again_only_after_another_connection_commits(tmp_path):
    path = _db(tmp_path)
    reader = db.connect_readonly(path)
    first = db.revision(reader)
    reads = []
    reader.set_trace_callback(reads.append)
    assert db.revision(reader) == first
    assert not any("FROM meta" in sql for sql in reads)  # only PRAGMA data_version was asked
    with db.writing(path):
        pass  # a write bumps the revision
    assert db.revision(reader) == first + 1
    assert any("FROM meta" in sql for sql in reads)


def test_a_pinned_connection_answers_from_memory_until_unpinned(tmp_path):
    path = _db(tmp_path)
    reader = db.connect_readonly(path)
    reader.pin()
    first = db.revision(reader)
    with db.writing(path):
        pass
    reads = []
    reader.set_trace_callback(reads.append)
    assert db.revision(reader) == first  # one request sees one version
    assert reads == []
    reader.unpin()
    assert db.revision(reader) == first + 1


def test_every_write_notes_when_it_happened(tmp_path):
    path = _db(tmp_path)
    with db.writing(path):
        pass
    conn = sqlite3.connect(path)
    written = int(conn.execute("SELECT value FROM meta WHERE key = 'written_at'").fetchone()[0])
    assert abs(written - db.utcnow().timestamp()) < 60


def _settled_reader(path):
    """Return a reader that has looked at the database twice (the WAL-index is watched from then on)."""
    reader = db.connect_readonly(path)
    db.revision(reader)
    db.revision(reader)
    return reader


def test_in_wal_mode_sqlite_is_not_asked_until_something_is_committed(tmp_path):
    path = _db(tmp_path)
    reader = _settled_reader(path)
    first = db.revision(reader)
    reads = []
    reader.set_trace_callback(reads.append)
    assert db.revision(reader) == first
    assert reads == []  # the WAL-index header was the same: no statement at all
    with db.writing(path):
        pass
    assert db.revision(reader) == first + 1
    assert "PRAGMA data_version" in reads
    reader.close()


def test_a_commit_after_the_log_restarts_is_noticed(tmp_path):
    path = _db(tmp_path)
    reader = _settled_reader(path)
    first = db.revision(reader)
    writer = sqlite3.connect(path)
    # Copy the log into the file and empty it: the next commit writes frame 1 again, with new salts.
    assert writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    writer.close()
    assert db.revision(reader) == first
    with db.writing(path):
        pass
    assert db.revision(reader) == first + 1
    reader.close()


def test_a_database_not_in_wal_mode_is_asked_every_time(tmp_path):
    path = _db(tmp_path)
    writer = sqlite3.connect(path)
    assert writer.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    writer.close()
    reader = _settled_reader(path)
    first = db.revision(reader)
    for n in (1, 2):
        with db.writing(path):
            pass
        assert db.revision(reader) == first + n
    reader.close()
