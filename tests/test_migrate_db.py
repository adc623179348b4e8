"""scripts/migrate_db.py against a real private PostgreSQL + PostGIS cluster (benchmarks/pg.py)."""
from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import shapely
from pgtools import PECHORY, Database, add_listening_rows, dump, migrate, pg_query

from portal import create_app
from portal.data import transfer
from portal.data.engines import describe, engine_for, is_postgres
from tests.conftest import DEMO_NOW

OUTSIDE = (57.818659, 27.6517)  # no coverage: the nearest fiber is 1 km west
ANSWERS = ["/api/v1/status?town=pechory", f"/api/v1/check?lat={OUTSIDE[0]}&lon={OUTSIDE[1]}",
           f"/api/v1/check?lat={PECHORY[0]}&lon={PECHORY[1]}", "/api/v1/towns/pechory", "/api/v1/incidents"]


@pytest.fixture(scope="module")
def server(pg_server):
    """The session's private cluster: its socket folder."""
    return pg_server


@pytest.fixture
def target(server) -> Database:
    return Database(server)


@pytest.fixture(scope="module")
def original(demo_db_template, tmp_path_factory) -> Path:
    """The demo database with people listening, as the portal stores them."""
    path = tmp_path_factory.mktemp("original") / "portal.sqlite"
    shutil.copy(demo_db_template, path)
    add_listening_rows(path)
    counts = {t: len(rows) for t, rows in dump(path).items()}
    listening = ("subscriptions", "outbox", "reports", "interest", "feedback", "sqlite_sequence")
    assert all(counts[t] for t in listening)
    return path


@pytest.fixture(scope="module")
def round_trip(original, server, tmp_path_factory):
    """Copy the original to PostgreSQL and from there to a new SQLite file."""
    database = Database(server)
    there = migrate(original, database.url)
    assert there.returncode == 0, there.stderr
    back = tmp_path_factory.mktemp("back") / "portal.sqlite"
    again = migrate(database.url, back)
    assert again.returncode == 0, again.stderr
    return database, back, there.stdout


def test_sqlite_to_postgresql_to_sqlite_gives_back_every_row(original, round_trip):
    database, back, report = round_trip
    before, after = dump(original), dump(back)
    assert after.keys() == before.keys()
    for table in before:
        assert after[table] == before[table], table
    assert "towns                     56        56  equal" in report and "every count matches" in report
    assert database.tables() == {t: len(rows) for t, rows in before.items()
                                 if t not in ("schema", "sqlite_sequence")}


def test_geometries_are_postgis_geometries_with_gist_indexes_and_the_same_wkb(original, round_trip):
    database = round_trip[0]
    kinds = pg_query(database.dsn, "SELECT f_table_name, type, srid FROM geometry_columns ORDER BY 1")
    assert kinds == [("coverage", "GEOMETRY", 4326), ("incident_areas", "GEOMETRY", 4326),
                     ("towns", "GEOMETRY", 4326)]
    there = pg_query(database.dsn, "SELECT id, ST_AsBinary(geom) FROM coverage ORDER BY id")
    with closing(sqlite3.connect(original)) as conn:
        here = conn.execute("SELECT id, geom FROM coverage ORDER BY id").fetchall()
        assert [(i, bytes(g)) for i, g in there] == here and len(here) == 76
        sqlite_indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                      " AND sql IS NOT NULL")}
    pg_indexes = dict(pg_query(database.dsn, "SELECT indexname, indexdef FROM pg_indexes"
                                             " WHERE schemaname = 'public'"))
    assert sqlite_indexes <= pg_indexes.keys()
    assert "USING gist (geom)" in pg_indexes["coverage_geom_gist"]
    assert pg_indexes["subscriptions_staff"].endswith("WHERE (staff <> 0)")


def test_new_ids_on_postgresql_continue_after_the_highest_ever_given(original, target):
    import psycopg

    assert migrate(original, target.url).returncode == 0
    with psycopg.connect(target.dsn) as conn:  # a sequence gives an id for good, even rolled back
        top = conn.execute("SELECT max(id) FROM subscriptions").fetchone()[0]
        new = conn.execute("INSERT INTO subscriptions (channel, address, token, town, services, lang,"
                           " created_at) VALUES ('email', 'x@example.org', 'tok', 'pechory', 1, 'en', 'now')"
                           " RETURNING id")
        assert (top, new.fetchone()[0]) == (2, 4)  # 3 was given, then unsubscribed
        layer = conn.execute("INSERT INTO layers (kind, created_at, author, source, feature_count)"
                             " VALUES ('towns', 'now', 'anna', 'x', 0) RETURNING id").fetchone()[0]
        assert layer == 3
        conn.rollback()


def test_the_round_tripped_database_gives_the_same_answers(original, round_trip):
    apps = [create_app({"DATABASE": str(p), "NOW": DEMO_NOW, "TESTING": True})
            for p in (original, round_trip[1])]
    for url in ANSWERS:
        first, second = (app.test_client().get(url) for app in apps)
        assert first.status_code == second.status_code == 200, url
        assert first.get_json() == second.get_json(), url


def test_a_spatial_query_on_postgresql_finds_what_the_portal_answers(original, round_trip):
    database = round_trip[0]
    live = int(pg_query(database.dsn, "SELECT value FROM meta WHERE key = 'live_coverage'")[0][0])
    with closing(sqlite3.connect(original)) as conn:
        rows = conn.execute("SELECT id, technology, status, max_down_mbps, geom FROM coverage"
                            " WHERE layer_id = ?", (live,)).fetchall()
    areas = {r[0]: (r[1], r[2], r[3], shapely.from_wkb(r[4])) for r in rows}
    planned_only = next(g for t, s, _, g in areas.values() if s == "planned")
    inside = planned_only.representative_point()
    points = [PECHORY, OUTSIDE, (inside.y, inside.x)]
    app = create_app({"DATABASE": str(original), "NOW": DEMO_NOW, "TESTING": True})
    found_any = False
    for lat, lon in points:
        ids = [r[0] for r in pg_query(
            database.dsn, "SELECT id FROM coverage WHERE layer_id = %s AND ST_Intersects(geom,"
                          " ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY id", (live, lon, lat))]
        point = shapely.Point(lon, lat)
        assert ids == sorted(i for i, a in areas.items() if a[3].intersects(point))
        found_any = found_any or bool(ids)
        answer = app.test_client().get(f"/api/v1/check?lat={lat}&lon={lon}").get_json()
        live_speed = {}
        for i in ids:
            technology, status, down, _ = areas[i]
            if status == "live":
                live_speed[technology] = max(live_speed.get(technology, 0), down or 0)
        assert {a["technology"]: a["max_down_mbps"] for a in answer["available"]} == live_speed
        planned = {areas[i][0] for i in ids if areas[i][1] == "planned"} - live_speed.keys()
        assert {p["technology"] for p in answer["planned"]} == planned
    assert found_any


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_non_empty_target_is_refused_and_left_unchanged(original, round_trip, tmp_path):
    database, back, _ = round_trip
    before = database.tables()
    refused = migrate(original, database.url)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "is not empty" in refused.stderr and "towns (56 rows)" in refused.stderr
    assert "--replace" in refused.stderr
    assert database.tables() == before
    digest = sha(back)
    refused = migrate(original, back)
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert sha(back) == digest


def test_replace_puts_the_source_in_place_of_another_portal(original, demo_db_template, target, tmp_path):
    other = tmp_path / "other.sqlite"
    shutil.copy(demo_db_template, other)
    assert migrate(demo_db_template, target.url).returncode == 0
    replaced = migrate(original, target.url, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert target.tables()["subscriptions"] == 2
    assert migrate(target.url, other, "--replace").returncode == 0
    assert dump(other) == dump(original)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_postgresql_to_postgresql_is_a_plain_copy(original, round_trip, target, tmp_path):
    assert migrate(round_trip[0].url, target.url).returncode == 0
    assert target.tables() == round_trip[0].tables()
    assert migrate(target.url, tmp_path / "again.sqlite").returncode == 0
    assert dump(tmp_path / "again.sqlite") == dump(original)


def test_sqlite_to_sqlite_is_a_plain_copy(original, tmp_path):
    done = migrate(original, tmp_path / "new" / "copy.sqlite")
    assert done.returncode == 0, done.stderr
    assert dump(tmp_path / "new" / "copy.sqlite") == dump(original)


@pytest.mark.parametrize("source,message", [
    ("missing.sqlite", "missing.sqlite: no such file"),
    ("notes.txt", "notes.txt is not a portal database"),
    ("empty.sqlite", "empty.sqlite is not a portal database"),
    ("postgresql://bench@/portal?host=/nonexistent-folder", "cannot open postgresql://bench@/portal?host="),
    ("mysql://bench@db/portal", "give an SQLite file or a postgresql:// URL"),
])
def test_bad_input_gets_one_line_and_exit_2(source, message, tmp_path, target):
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    sqlite3.connect(tmp_path / "empty.sqlite").execute("CREATE TABLE t (x)").connection.close()
    given = source if "://" in source else tmp_path / source
    result = migrate(given, target.url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert target.tables() == {}


def test_a_row_postgresql_refuses_rolls_the_whole_copy_back(original, target, tmp_path):
    broken = tmp_path / "broken.sqlite"
    shutil.copy(original, broken)
    with closing(sqlite3.connect(broken)) as conn, conn:
        conn.execute("UPDATE coverage SET max_down_mbps = 'fast' WHERE id = (SELECT max(id) FROM coverage)")
    result = migrate(broken, target.url, "--batch", "10")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "copying table coverage failed" in result.stderr and "left as it was" in result.stderr
    assert target.tables() == {}
    assert pg_query(target.dsn, "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'") == [(0,)]


def test_a_geometry_that_does_not_come_back_byte_for_byte_fails_the_check(original, target, tmp_path):
    changed = tmp_path / "big-endian.sqlite"
    shutil.copy(original, changed)
    with closing(sqlite3.connect(changed)) as conn, conn:
        wkb = conn.execute("SELECT geom FROM incident_areas WHERE id = 1").fetchone()[0]
        big_endian = shapely.to_wkb(shapely.from_wkb(wkb), byte_order=0)  # PostGIS gives back little-endian
        conn.execute("UPDATE incident_areas SET geom = ? WHERE id = 1", (big_endian,))
    result = migrate(changed, target.url)
    assert result.returncode == 1
    assert "incident_areas (2 rows, copied 2, geometries differ)" in result.stderr
    assert "DIFFERENT  <-- differs" in result.stderr and "left as it was" in result.stderr
    assert target.tables() == {}


def test_replace_refuses_a_database_holding_other_tables(original, target):
    import psycopg

    with psycopg.connect(target.dsn) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    result = migrate(original, target.url, "--replace")
    assert result.returncode == 2 and "tables that are not the portal's (invoices)" in result.stderr
    assert target.tables() == {"invoices": 0}


@pytest.mark.parametrize("to_postgres", [True, False])
def test_an_interrupted_copy_leaves_the_target_as_it_was(original, target, tmp_path, to_postgres):
    def interrupt(table, rows):
        if table == "coverage":  # rows of earlier tables are already written
            raise KeyboardInterrupt

    destination = target.url if to_postgres else str(tmp_path / "portal.sqlite")
    with pytest.raises(KeyboardInterrupt):
        transfer.move(str(original), destination, batch=5, progress=interrupt)
    assert target.tables() == {}
    assert list(tmp_path.iterdir()) == []


def test_targets_are_told_apart_and_urls_printed_without_passwords(tmp_path):
    assert is_postgres("postgresql://u@h/db") and is_postgres("postgres://u@h/db")
    assert is_postgres("postgresql+psycopg2://u@h/db") and not is_postgres("instance/portal.sqlite")
    assert not is_postgres("postgresql.sqlite") and not is_postgres(str(tmp_path / "postgresql:x"))
    assert describe("postgresql://anna:secret@db.example/portal") == "postgresql://anna:***@db.example/portal"
    socket = engine_for("postgres://portal@/portal?host=/run/postgresql")
    assert socket.url.drivername == "postgresql+psycopg" and socket.url.host is None
    assert socket.url.query == {"host": "/run/postgresql"} and socket.url.database == "portal"
    path = tmp_path / "it's a file.sqlite"
    with engine_for(path).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine_for(path, readonly=True).connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalar() == 1
        with pytest.raises(Exception, match="readonly"):
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")


def test_help_ends_with_an_example():
    out = migrate("--help").stdout.rstrip().splitlines()
    assert out[-2].strip() == "Example:" and out[-1].strip().startswith("python scripts/migrate_db.py")
