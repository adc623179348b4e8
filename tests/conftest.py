"""Shared fixtures: the demo database built once from geodata/, an app and a client on a copy."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from portal import create_app
from portal.config import GEODATA_DIR
from portal.data import build

# The demo's incidents are placed relative to the build time; pages pin the same clock.
DEMO_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory):
    """Build the demo database once per test session."""
    path = tmp_path_factory.mktemp("demo") / "portal.sqlite"
    build.build_database(path, GEODATA_DIR, now=DEMO_NOW)
    return path


@pytest.fixture
def db_path(demo_db_template, tmp_path):
    """Give each test its own copy of the demo database."""
    path = tmp_path / "portal.sqlite"
    shutil.copy(demo_db_template, path)
    return path


def pytest_generate_tests(metafunc):
    """Run every test of the app on SQLite and on PostgreSQL, unless it reaches the SQLite file itself.

    A test (or a fixture it uses) that asks for ``db_path`` reads or writes the SQLite file
    directly, so it runs on SQLite only; the others see the portal only through the app, the
    client and the scripts, and run on both engines.
    """
    if "app_engine" in metafunc.fixturenames:
        engines = ["sqlite"] if "db_path" in metafunc.fixturenames else ["sqlite", "postgresql"]
        metafunc.parametrize("app_engine", engines)


@pytest.fixture
def app(app_engine, request):
    """Create the app on the test's own copy of the demo database, the clock pinned to the build time."""
    target = request.getfixturevalue("db_path" if app_engine == "sqlite" else "pg_url")
    return create_app({"DATABASE": str(target), "NOW": DEMO_NOW, "TESTING": True})


@pytest.fixture
def client(app):
    """Return a test client that asks for English unless a test says otherwise."""
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return c


@pytest.fixture(scope="session")
def pg_server():
    """Start a private PostgreSQL + PostGIS cluster (Debian's packages) for the session; yield its socket folder."""
    from benchmarks import pg

    if pg.available() is not None:
        pytest.skip(pg.available())
    with pg.cluster() as dsn:
        yield dict(part.split("=", 1) for part in dsn.split())["host"]


@pytest.fixture(scope="session")
def pg_demo_template(pg_server, demo_db_template) -> str:
    """Copy the demo database to PostgreSQL once (``migrate_db``'s copy); return the database's name."""
    import psycopg

    from portal.data import transfer

    with psycopg.connect(f"host={pg_server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute("CREATE DATABASE portal_demo")
    transfer.move(str(demo_db_template), f"postgresql://bench@/portal_demo?host={pg_server}")
    return "portal_demo"


_pg_databases = iter(range(1, 1_000_000))


@pytest.fixture
def pg_url(pg_server, pg_demo_template) -> str:
    """Give the test its own PostgreSQL copy of the demo database; return its URL."""
    import psycopg

    name = f"portal_test_{next(_pg_databases)}"
    with psycopg.connect(f"host={pg_server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {pg_demo_template}")
    return f"postgresql://bench@/{name}?host={pg_server}"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request) -> str:
    """Run the test once on SQLite and once on PostgreSQL: the name of the engine."""
    return request.param


@pytest.fixture
def db_target(engine, request) -> str:
    """The test's own copy of the demo database on the engine under test: a path or a postgresql:// URL."""
    if engine == "sqlite":
        return str(request.getfixturevalue("db_path"))
    return request.getfixturevalue("pg_url")


@pytest.fixture
def write_conn(db_target):
    """A driver connection to the test's own copy of the demo database, on the engine under test.

    Autocommit, as ``portal.listening.store.connect`` opens them: a statement is a transaction
    unless ``store.transaction`` opens one.
    """
    from portal.data import statements

    conn = statements.connect(db_target)
    yield conn
    conn.close()
