"""Rebuilding the database while it is read: the new content is copied in as one commit."""
from __future__ import annotations

import sqlite3

from portal import build, db, incidents
from portal.config import GEODATA_DIR


def test_a_rebuild_reaches_connections_opened_before_and_after_it(tmp_path):
    path = tmp_path / "portal.sqlite"
    build.build_database(path, GEODATA_DIR)
    reader = db.connect_readonly(path)
    first = db.get_meta(reader)
    opened = incidents.open_incident(path, title="Fibre cut", services=["internet"], towns=["pechory"],
                                     author="test")
    assert db.revision(reader) == int(first["revision"]) + 1

    build.build_database(path, GEODATA_DIR)

    for conn in (reader, db.connect_readonly(path)):
        meta = db.get_meta(conn)
        assert meta["build_id"] != first["build_id"]
        assert int(meta["revision"]) > int(first["revision"]) + 1  # continues; never reused
        gone = conn.execute("SELECT count(*) FROM incidents WHERE id = ? AND title = 'Fibre cut'", (opened,))
        assert gone.fetchone()[0] == 0  # the rebuild's incidents are the demo's
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir() if "building" in p.name) == []


def test_a_file_that_is_not_a_database_is_replaced(tmp_path):
    path = tmp_path / "portal.sqlite"
    path.write_bytes(b"not a database" * 100)
    build.build_database(path, GEODATA_DIR)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM towns").fetchone()[0] > 0
    conn.close()
