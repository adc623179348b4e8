"""Helpers for tests/test_migrate_db.py: run the script, dump an SQLite database, PostgreSQL databases."""
from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from portal import create_app
from portal.data import db
from portal.listening import subscriptions
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "migrate_db.py"
PECHORY = (57.812371, 27.614539)
_names = itertools.count()


def migrate(*args) -> subprocess.CompletedProcess:
    """Run the script in its own process."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def dump(path) -> dict:
    """Return every table's rows with their rowids (sqlite_sequence included) in rowid order, and the schema.

    The portal reads some tables in rowid order (town_shares), so rowids are part of the data.
    """
    with closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        names = [r[0] for r in tables]
        out = {}
        for n in names:
            if n == "sqlite_sequence":  # SQLite's own bookkeeping: its rowids mean nothing
                out[n] = conn.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name").fetchall()
                continue
            try:
                out[n] = conn.execute(f'SELECT rowid, * FROM "{n}" ORDER BY rowid').fetchall()
            except sqlite3.OperationalError:  # WITHOUT ROWID: in key order
                out[n] = conn.execute(f'SELECT * FROM "{n}" ORDER BY 1, 2').fetchall()
        out["schema"] = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    return out


def pg_query(url_dsn: str, sql: str, params=()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url_dsn) as conn:
        return conn.execute(sql, params).fetchall()


class Database:
    """A new, empty PostgreSQL database: its URL for the script and its DSN for psycopg."""

    def __init__(self, server: str):
        import psycopg

        self.name = f"portal_{next(_names)}"
        with psycopg.connect(f"host={server} dbname=postgres user=bench", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        self.url = f"postgresql://bench@/{self.name}?host={server}"
        self.dsn = f"host={server} dbname={self.name} user=bench"

    def tables(self) -> dict[str, int]:
        rows = pg_query(self.dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                  " AND tablename <> 'spatial_ref_sys' ORDER BY 1")
        return {t: pg_query(self.dsn, f'SELECT count(*) FROM "{t}"')[0][0] for (t,) in rows}


def add_listening_rows(path: Path) -> None:
    """Give the demo subscribers, reports, interest and feedback through the portal's own API."""
    app = create_app({"DATABASE": str(path), "NOW": DEMO_NOW, "TESTING": True, "TRUSTED_PROXY_HOPS": 1})
    for n in range(3):
        c = app.test_client()
        headers = {"X-Forwarded-For": f"10.{n}.0.5", "Sec-Fetch-Site": "same-origin"}
        body = {"email": f"reader{n}@example.org", "town": "pechory", "services": ["internet"], "lang": "en"}
        assert c.post("/api/v1/subscriptions", json=body, headers=headers).status_code == 202
        assert c.post("/api/v1/reports", json={"service": "internet", "town": "pechory"},
                      headers=headers).status_code == 202
        point = {"lat": PECHORY[0] + n * 2e-5, "lon": PECHORY[1]}
        assert c.post("/api/v1/interest", json=point, headers=headers).status_code == 202
    assert app.test_client().post("/api/v1/feedback", json={"town": "pechory", "technology": "dsl",
                                                            "message": "slow"}).status_code == 202
    with db.writing(path) as conn:  # the last id is not given again: sqlite_sequence keeps it
        assert subscriptions.unsubscribe_id(conn, 3)
