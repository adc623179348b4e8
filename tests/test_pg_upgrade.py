"""A PostgreSQL portal an older version made gets the migrations it lacks, in place, as an SQLite one does.

The oracle is SQLite itself: the same older portal, kept as a file, migrated by the project's own
migrations. The PostgreSQL copy, upgraded by ``pgupgrade`` (through the app's and the scripts' own
start, ``build.ensure_database``), must then hold the same rows, and its schema must be the one a
portal made by this version has.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from portal import create_app
from portal.data import build, migrations, pgupgrade, portable, transfer
from portal.data import statements as sql
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = pgupgrade.wanted()


def older_portal(path: Path, before: str, demo: Path) -> Path:
    """Make an SQLite portal as an older version did (migrations up to ``before``), with the demo's rows."""
    migrations.migrate(path, before)
    ref = portable.reference(before)
    conn = sqlite3.connect(path)
    try:
        conn.execute("ATTACH DATABASE ? AS demo", (str(demo),))
        with conn:
            for table in ref.tables():
                if table.name == pgupgrade.MIGRATIONS_TABLE:
                    continue
                columns = ", ".join(f'"{c}"' for c in table.columns.keys())
                columns += ", rowid" if table.name in ref.hidden_rowid else ""
                conn.execute(f'DELETE FROM main."{table.name}"')
                conn.execute(f'INSERT INTO main."{table.name}" ({columns})'
                             f' SELECT {columns} FROM demo."{table.name}"')
            if "m010_listening" in MIGRATIONS[MIGRATIONS.index(before):]:
                conn.execute("DELETE FROM main.meta WHERE key = 'listening_key'")  # m010 writes it
    finally:
        conn.close()
    return path


def new_database(server: str) -> str:
    """Create an empty database in the session's cluster; return its URL."""
    name = f"upgrade_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"host={server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://bench@/{name}?host={server}"


def rows(path: Path) -> dict:
    """Every row of every portal table of an SQLite file; the parts no two migrations write alike made equal.

    The listening key is a new random secret wherever m010 runs (its length is kept); the
    migrations' record keeps names and order, not the times they were applied.
    """
    conn = sqlite3.connect(path)
    try:
        out = {}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            found = conn.execute(f'SELECT rowid, * FROM "{name}"' if name in portable.reference().hidden_rowid
                                 else f'SELECT * FROM "{name}"').fetchall()
            if name == "meta":
                found = [(*r[:-1], len(r[-1])) if r[-2] == "listening_key" else r for r in found]
            if name == pgupgrade.MIGRATIONS_TABLE:
                found = [row[:3] for row in found]  # id, migration_set, name
            out[name] = sorted(found, key=repr)
        return out
    finally:
        conn.close()


def schema(url: str) -> dict:
    """Describe a PostgreSQL portal's schema: columns in order, constraints and indexes."""
    with closing(sql.connect_postgres(url)) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity FROM"
            " information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2")
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes"
                               " WHERE schemaname = 'public' ORDER BY 1")
        return {"columns": [tuple(r) for r in columns], "constraints": [tuple(r) for r in constraints],
                "indexes": [tuple(r) for r in indexes]}


def applied(url: str) -> list[str]:
    with closing(sql.connect_postgres(url)) as conn:
        return pgupgrade.applied(conn)


@pytest.fixture(scope="module")
def made_now(pg_server, demo_db_template) -> dict:
    """The schema of a PostgreSQL portal this version makes (the demo copied in)."""
    url = new_database(pg_server)
    transfer.move(str(demo_db_template), url)
    return schema(url)


def older_postgres(tmp_path, pg_server, demo_db_template, before: str) -> str:
    """A PostgreSQL portal an older version made (copied there by that version's migrate_db); its URL."""
    url = new_database(pg_server)
    transfer.move(str(older_portal(tmp_path / "older.sqlite", before, demo_db_template)), url, before=before)
    return url


@pytest.mark.parametrize("before", MIGRATIONS[1:])
def test_an_older_portal_upgraded_in_place_holds_what_sqlite_migrations_make(before, tmp_path, pg_server,
                                                                               demo_db_template, made_now):
    url = older_postgres(tmp_path, pg_server, demo_db_template, before)
    assert applied(url) == MIGRATIONS[:MIGRATIONS.index(before)]
    oracle = shutil.copy(tmp_path / "older.sqlite", tmp_path / "oracle.sqlite")
    migrations.migrate(oracle)  # SQLite's own migrations, on the same older portal

    assert build.ensure_database(url) is False  # what the app and every staff script do at start
    assert applied(url) == MIGRATIONS
    assert schema(url) == made_now
    transfer.move(url, str(tmp_path / "back.sqlite"))  # refuses anything but this version's schema
    assert rows(tmp_path / "back.sqlite") == rows(oracle)


def test_the_app_upgrades_an_older_portal_and_serves_its_incidents(tmp_path, pg_server, demo_db_template):
    url = older_postgres(tmp_path, pg_server, demo_db_template, "m015_incident_languages")
    client = create_app({"DATABASE": url, "NOW": DEMO_NOW, "TESTING": True}).test_client()
    found = client.get("/api/v1/incidents", headers={"Accept-Language": "en"})
    assert found.status_code == 200
    assert found.get_json()["incidents"]  # the demo's incidents, stored before there were English texts
    assert applied(url) == MIGRATIONS


def test_a_staff_script_upgrades_an_older_portal(tmp_path, pg_server, demo_db_template):
    url = older_postgres(tmp_path, pg_server, demo_db_template, "m014_feedback")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "incident.py"), "list", "--db", url],
                          capture_output=True, text=True, cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert applied(url) == MIGRATIONS


def test_nodes_starting_together_upgrade_it_once(tmp_path, pg_server, demo_db_template):
    url = older_postgres(tmp_path, pg_server, demo_db_template, "m013_staff_and_report_counts")
    failures = []

    def start():
        try:
            build.ensure_database(url)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert applied(url) == MIGRATIONS  # each name once


def test_a_killed_upgrade_leaves_the_portal_as_it_was(tmp_path, pg_server, demo_db_template):
    url = older_postgres(tmp_path, pg_server, demo_db_template, "m014_feedback")
    before, kept = schema(url), applied(url)
    # The upgrade stops inside its transaction, after m014's tables were made, and the process is killed.
    code = ("import sys, time\n"
            "from portal.data import build, migrations\n"
            "def stop(conn):\n"
            "    print('inside', flush=True)\n"
            "    time.sleep(60)\n"
            "migrations.data_steps['m015_incident_languages'] = stop\n"
            "build.ensure_database(sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert schema(url) == before and applied(url) == kept
    assert build.ensure_database(url) is False  # the dead node's lock is gone with its session
    assert applied(url) == MIGRATIONS


def test_a_portal_a_newer_version_made_is_refused_and_left_alone(pg_url):
    with closing(sql.connect_postgres(pg_url)) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                     " VALUES ('portal', 'm099_future', '2027-01-01')")
    before = schema(pg_url)
    with pytest.raises(pgupgrade.OtherVersion, match="newer or another version.*m099_future"):
        create_app({"DATABASE": pg_url})
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "incident.py"), "list", "--db", pg_url],
                          capture_output=True, text=True, cwd="/", timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: --db ") and "m099_future" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert schema(pg_url) == before


def _hand_made(path: Path, statements: list[str]) -> portable.Reference:
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return portable.read_schema(path)


def test_a_change_with_no_derived_postgresql_step_is_named(tmp_path):
    towns = "CREATE TABLE towns (id INTEGER PRIMARY KEY, population TEXT)"
    old = _hand_made(tmp_path / "old.sqlite", [towns])
    retyped = _hand_made(tmp_path / "new.sqlite", [towns.replace("TEXT", "INTEGER")])
    with pytest.raises(pgupgrade.NotPortable, match=r"towns\.population changes its type"):
        pgupgrade.changes(old, retyped)
    checked = _hand_made(tmp_path / "checked.sqlite",
                         [towns.replace("TEXT)", "TEXT CHECK (population <> ''))")])
    rechecked = _hand_made(tmp_path / "rechecked.sqlite",
                           [towns.replace("TEXT)", "TEXT CHECK (population > ''))")])
    with pytest.raises(pgupgrade.NotPortable, match="towns drops or changes a UNIQUE or CHECK constraint"):
        pgupgrade.changes(checked, rechecked)
    assert pgupgrade.changes(old, checked) == ["ALTER TABLE towns ADD CHECK (population <> '')"]
    added = "ALTER TABLE towns ADD COLUMN name TEXT NOT NULL DEFAULT ''"
    grown = _hand_made(tmp_path / "grown.sqlite", [towns, added, "CREATE INDEX towns_name ON towns(name)"])
    assert pgupgrade.changes(old, grown) == ["ALTER TABLE \"towns\" ADD COLUMN name TEXT DEFAULT '' NOT NULL",
                                             "CREATE INDEX towns_name ON towns(name)"]


def test_a_rename_is_refused_and_a_redeclared_key_is_dropped_and_added(tmp_path):
    towns = "CREATE TABLE towns (id INTEGER PRIMARY KEY, population TEXT)"
    old = _hand_made(tmp_path / "old.sqlite", [towns])
    renamed = _hand_made(tmp_path / "renamed.sqlite",
                         [towns, "ALTER TABLE towns RENAME COLUMN population TO people"])
    with pytest.raises(pgupgrade.NotPortable, match="towns drops population and adds a column"):
        pgupgrade.changes(old, renamed)
    moved = _hand_made(tmp_path / "moved.sqlite", [towns, "ALTER TABLE towns RENAME TO places"])
    with pytest.raises(pgupgrade.NotPortable, match="drops towns and adds a table"):
        pgupgrade.changes(old, moved)

    shares = "CREATE TABLE shares (town_id INTEGER NOT NULL REFERENCES towns(id){})"
    kept = _hand_made(tmp_path / "kept.sqlite", [towns, shares.format("")])
    cascading = _hand_made(tmp_path / "cascading.sqlite", [towns, shares.format(" ON DELETE CASCADE")])
    assert pgupgrade.changes(kept, cascading) == [
        'ALTER TABLE "shares" DROP CONSTRAINT "shares_town_id_fkey"',
        "ALTER TABLE shares ADD CONSTRAINT shares_town_id_fkey FOREIGN KEY(town_id) REFERENCES towns (id)"
        " ON DELETE CASCADE"]
