"""Helpers for tests run on SQLite and on PostgreSQL: hand-made databases on either, what a database holds."""
from __future__ import annotations

import itertools
import shutil
import uuid
from contextlib import closing, contextmanager

from portal.data import db, transfer
from portal.data import statements as sql

_copies = itertools.count()
_templates: dict[tuple[str, str], str] = {}


def engine_copy(engine: str, sqlite_template, tmp_path, request):
    """Return the test's own copy of a hand-made SQLite database on the engine under test: a path or a URL.

    On PostgreSQL the database is copied (``transfer.move``) once per template into a template
    database of the session's cluster; each test then gets a fresh copy of it.
    """
    if engine == "sqlite":
        path = tmp_path / sqlite_template.name
        shutil.copy(sqlite_template, path)
        return path
    import psycopg

    server = request.getfixturevalue("pg_server")
    admin = f"host={server} dbname=postgres user=bench"
    template = _templates.get((server, str(sqlite_template)))
    if template is None:
        template = f"hand_made_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {template}")
        transfer.move(str(sqlite_template), f"postgresql://bench@/{template}?host={server}")
        _templates[server, str(sqlite_template)] = template
    name = f"{template}_{next(_copies)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return f"postgresql://bench@/{name}?host={server}"


@contextmanager
def reading(target):
    """Yield a read connection (as the web side opens one) to a path or a URL, closed afterwards."""
    with closing(db.connect_readonly(target)) as conn:
        yield conn


def contents(target) -> dict:
    """Return every row of every portal table (and so the revision), to prove a refusal changed nothing."""
    with closing(sql.connect(target)) as conn:
        return {name: sorted(tuple(map(repr, row)) for row in conn.execute(f"SELECT * FROM {name}"))
                for name in sorted(sql.tables())}


def counts(target) -> dict:
    """Return the row count of every portal table and the data revision."""
    with closing(sql.connect(target)) as conn:
        found = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                 for name in sorted(sql.tables())}
        found["revision"] = db.revision(conn)
    return found


def missing_database(engine: str, tmp_path, request):
    """Return where no portal is yet on the engine under test: a path with no file, or an empty database.

    What a first start (``build.ensure_database``) is given: SQLite makes the file, PostgreSQL is
    given a database made empty by its administrator.
    """
    if engine == "sqlite":
        return tmp_path / "portal.sqlite"
    import psycopg

    server = request.getfixturevalue("pg_server")
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://bench@/{name}?host={server}"
