"""SQLAlchemy engines for where a portal's data lives: an SQLite file or a PostgreSQL database.

A target is either a path to an SQLite file or a ``postgresql://`` URL. PostgreSQL URLs are
used with the psycopg (3) driver whatever driver they name; ``postgres://`` is accepted too.
A Unix socket is given libpq's way, as a ``host`` parameter holding the socket's folder::

    postgresql://portal@/portal?host=/run/postgresql

SQLite connections run in the ``isolation_level=None`` mode of Python's ``sqlite3`` with an
explicit ``BEGIN`` on every SQLAlchemy transaction, so a transaction is one SQLite
transaction: reads see one snapshot and writes land together (SQLAlchemy's recipe for
pysqlite). Nothing here knows about Flask.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

POSTGRES_SCHEMES = ("postgresql", "postgres")


class Unreachable(RuntimeError):
    """A PostgreSQL target that cannot be opened; the message says why (one line, without the URL)."""


def reach(url: str):
    """Open a driver connection to a PostgreSQL target (``statements.connect_postgres``); else ``Unreachable``."""
    from portal.data import statements

    if not is_postgres(url):
        raise Unreachable("give an SQLite file or a postgresql:// URL")
    try:
        return statements.connect_postgres(url)
    except Exception as exc:  # noqa: BLE001 -- any failure to connect is the user's to fix
        raise Unreachable(f"cannot connect ({str(exc).strip().splitlines()[0]})") from None


def holds_portal(conn) -> bool:
    """Return whether a PostgreSQL connection's database holds a portal (a ``meta`` table)."""
    return conn.execute("SELECT to_regclass('public.meta')").fetchone()[0] is not None


def is_postgres(target: str) -> bool:
    """Return whether ``target`` names a PostgreSQL database (a URL) rather than an SQLite file."""
    scheme = str(target).split("://", 1)[0] if "://" in str(target) else ""
    return scheme.split("+", 1)[0].lower() in POSTGRES_SCHEMES


def postgres_url(target: str) -> URL:
    """Return the SQLAlchemy URL of a PostgreSQL target, on the psycopg driver."""
    text = str(target)
    if text.lower().startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    url = make_url(text)
    return url.set(drivername="postgresql+psycopg")


def describe(target: str) -> str:
    """Return a target as it may be printed: a URL without its password, or the path."""
    if is_postgres(target):
        shown = postgres_url(target).render_as_string(hide_password=True)
        return unquote(shown.replace("postgresql+psycopg://", "postgresql://", 1))
    return str(target)


def engine_for(target: str | Path, *, readonly: bool = False) -> sa.Engine:
    """Return an engine for an SQLite path or a PostgreSQL URL.

    ``readonly`` opens an SQLite file with ``mode=ro`` (never written, not even created) and
    makes PostgreSQL transactions ``READ ONLY`` and ``REPEATABLE READ``: one snapshot.
    """
    if is_postgres(str(target)):
        engine = sa.create_engine(postgres_url(str(target)))
        if readonly:
            engine = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return engine
    path = Path(target)

    def connect() -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30,
                                   isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        return conn

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine
