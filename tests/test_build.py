"""Rebuilding the database while it is read: the new content is copied in as one commit.

A rebuild of an SQLite file (``scripts/build_db.py``) has tests of the file's own (its write-ahead
log, a file that is no database); a rebuild of a PostgreSQL portal is copied in by ``migrate_db``'s
copy in one transaction. The first start, which gives a missing portal the demo
(``build.ensure_database``: an SQLite file made, or an empty PostgreSQL database filled by
``ensure_postgres``), is tested on both engines.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from enginetools import contents, counts, missing_database

from portal import create_app
from portal.config import GEODATA_DIR
from portal.data import build, db
from portal.data import statements as sql
from portal.incidents import writes as incidents


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


def test_a_write_during_a_rebuild_does_not_leave_the_portal_on_stale_incidents(tmp_path, monkeypatch):
    """A staff write can commit while a rebuild copies its data in, and so take the revision
    number the rebuild then gives the new data. The portal must still show the rebuilt data
    and change its ETag, not keep what it read during the rebuild."""
    path = tmp_path / "portal.sqlite"
    build.build_database(path, GEODATA_DIR)
    client = create_app({"DATABASE": str(path)}).test_client()
    seen = {}
    read_revision = db.revision

    def revision_then_a_staff_write(conn):
        found = read_revision(conn)
        if not seen and conn.execute("PRAGMA database_list").fetchone()[2] == str(path) \
                and not isinstance(conn, db.ReadConnection):
            # The rebuild has read the revision it will continue from; a staff write lands
            # (a second after the rebuild's own writes), and the portal answers a request
            # before the new data is copied in.
            time.sleep(1.1)
            incidents.open_incident(path, title="Fibre cut", services=["internet"], towns=["pechory"],
                                    author="test")
            r = client.get("/api/v1/status?town=pechory")
            seen.update(etag=r.headers["ETag"], titles=[i["title"] for i in r.get_json()["incidents"]],
                        revision=read_revision(db.connect_readonly(path)),
                        written_at=int(db.get_meta(db.connect_readonly(path))["written_at"]))
        return found

    monkeypatch.setattr(db, "revision", revision_then_a_staff_write)
    build.build_database(path, GEODATA_DIR)

    assert seen["titles"] == ["Fibre cut"]
    assert db.revision(db.connect_readonly(path)) == seen["revision"]  # the same number, other data
    # Last-Modified must not go back to when the rebuild wrote its data, before that write.
    assert int(db.get_meta(db.connect_readonly(path))["written_at"]) >= seen["written_at"]
    r = client.get("/api/v1/status?town=pechory")
    assert [i["title"] for i in r.get_json()["incidents"]] == []
    assert r.headers["ETag"] != seen["etag"]
    stale = client.get("/api/v1/status?town=pechory", headers={"If-None-Match": seen["etag"]})
    assert stale.status_code == 200


def test_a_new_database_is_not_read_against_the_write_ahead_log_of_a_deleted_one(tmp_path):
    """The database file deleted while the portal still has it open leaves its ``-wal`` and
    ``-shm`` behind; a new database built at the same path must not be read against them."""
    path = tmp_path / "portal.sqlite"
    build.build_database(path, GEODATA_DIR)
    portal = sqlite3.connect(path)  # a portal still serving: the log stays while it is open
    portal.execute("SELECT count(*) FROM towns").fetchone()
    incidents.open_incident(path, title="Fibre cut", services=["internet"], towns=["pechory"], author="test")
    assert Path(f"{path}-wal").stat().st_size > 0
    path.unlink()

    assert build.ensure_database(path, GEODATA_DIR)

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM incidents WHERE title = 'Fibre cut'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM towns").fetchone()[0] > 0
    conn.close()
    portal.close()


def _rows(found: dict) -> dict:
    """Return the row counts of ``enginetools.counts`` without the revision (which says when, not what)."""
    return {name: n for name, n in found.items() if name != "revision"}


def test_a_first_start_builds_the_demo_once_and_then_leaves_the_portal_and_its_writes(
        engine, tmp_path, request, demo_db_template):
    target = missing_database(engine, tmp_path, request)
    assert build.ensure_database(target, GEODATA_DIR)
    demo = counts(demo_db_template)
    assert _rows(counts(target)) == _rows(demo)
    incidents.open_incident(target, title="Fibre cut", services=["internet"], towns=["pechory"],
                            author="test")
    before = contents(target)
    assert counts(target)["incidents"] == demo["incidents"] + 1

    assert not build.ensure_database(target, GEODATA_DIR)  # the next start
    assert contents(target) == before


def test_nodes_starting_at_once_build_the_demo_once(engine, tmp_path, request, demo_db_template):
    target = missing_database(engine, tmp_path, request)
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: build.ensure_database(target, GEODATA_DIR), range(2)))
    assert sorted(built) == [False, True]
    assert _rows(counts(target)) == _rows(counts(demo_db_template))  # one demo, not two


ROOT = Path(__file__).resolve().parent.parent


def build_db(*args) -> subprocess.CompletedProcess:
    """Run scripts/build_db.py as staff do, from a folder of its own (nothing may be written there)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "build_db.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=os.getcwd(), timeout=600)


@pytest.mark.parametrize("engine", ["postgresql"])
def test_build_db_rebuilds_a_postgresql_portal_in_one_commit_continuing_its_revision(engine, pg_url, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    with closing(db.connect_readonly(pg_url)) as reader:
        first = dict(db.get_meta(reader))
    opened = incidents.open_incident(pg_url, title="Fibre cut", services=["internet"], towns=["pechory"],
                                     author="test")
    done = build_db("--db", pg_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"built {pg_url}"
    with closing(db.connect_readonly(pg_url)) as reader:
        meta = db.get_meta(reader)
    assert meta["build_id"] != first["build_id"]
    assert int(meta["revision"]) == int(first["revision"]) + 2  # the write, then the rebuild: never reused
    with closing(sql.connect(pg_url)) as conn:
        assert conn.execute(f"SELECT count(*) FROM incidents WHERE id = {int(opened)}").fetchone()[0] == 0
    assert list(tmp_path.iterdir()) == []  # built in a temporary folder, not in the working one


@pytest.mark.parametrize("engine", ["postgresql"])
def test_build_db_fills_an_empty_postgresql_database(engine, tmp_path, request, demo_db_template):
    target = missing_database(engine, tmp_path, request)
    done = build_db("--db", target)
    assert done.returncode == 0, done.stderr
    assert _rows(counts(target)) == _rows(counts(demo_db_template))


def test_build_db_refuses_a_database_it_cannot_reach_or_replace_and_changes_nothing(pg_url, pg_server,
                                                                                  tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with closing(sql.connect(pg_url)) as conn:
        conn.execute("CREATE TABLE invoices (id bigint)")  # not the portal's: never dropped
    before = contents(pg_url)
    for target, said in ((pg_url, "not the portal's"),
                         (f"postgresql://bench@/no_such_db?host={pg_server}", "cannot connect"),
                         ("mysql://bench@localhost/portal", "give an SQLite file or a postgresql:// URL")):
        refused = build_db("--db", target)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert refused.stderr.startswith("Error: --db ") and len(refused.stderr.strip().splitlines()) == 1
    assert contents(pg_url) == before
    with closing(sql.connect(pg_url)) as conn:
        assert conn.execute("SELECT to_regclass('public.invoices')").fetchone()[0] is not None
    assert list(tmp_path.iterdir()) == []
