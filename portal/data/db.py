"""The database: connections, the data revision and ``meta`` (the schema: ``portal.data.migrations``).

The web side opens the file read-only; every write (imports, incidents, the
demo build) goes through functions the staff scripts call, each in one
transaction that also bumps ``meta.revision`` so every worker process notices
the change on its next request. The write transaction (``writing``) and the
revision and ``meta`` it keeps work on a PostgreSQL portal too (a ``postgresql://``
URL; ``portal.data.statements``).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import sqlalchemy as sa

from portal.data import statements as sql


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` (seconds precision)."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """Parse a stored ISO 8601 UTC string back into an aware datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ReadConnection(sqlite3.Connection):
    """A read-only connection that keeps ``meta`` until another connection commits.

    ``PRAGMA data_version`` changes when any other connection, in any process, commits: the
    documented way for a connection kept open to notice writes
    (https://sqlite.org/pragma.html#pragma_data_version).
    """

    _meta: Mapping[str, str] | None = None
    _version: int | None = None

    def begin(self) -> None:
        """Start a read transaction: every query until ``rollback`` sees the same version of the data."""
        self.execute("BEGIN")

    def meta(self) -> Mapping[str, str]:
        """Return the meta table, read again only when another connection committed since the last look."""
        version = self.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version or self._meta is None:
            # A commit landing between the two statements changes the version again: read next time.
            rows = self.execute("SELECT key, value FROM meta")
            self._meta = MappingProxyType({row[0]: row[1] for row in rows})
            self._version = version
        return self._meta


def connect_readonly(path: str | Path) -> ReadConnection:
    """Open the database read-only, as every web request does.

    A ``postgresql://`` URL gives a ``pgread.PostgresRead``, which answers the same way.
    """
    if "://" in str(path):
        from portal.data.pgread import PostgresRead

        return PostgresRead(str(path))
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, factory=ReadConnection)
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def writing(target: str | Path):
    """Yield a connection inside one transaction that bumps the data revision.

    ``target``: an SQLite file, or a ``postgresql://`` URL. Everything written inside the block
    lands together, or, on any exception (including KeyboardInterrupt), nothing does.
    """
    if "://" in str(target):
        conn = sql.connect_postgres(str(target))
    else:
        conn = sqlite3.connect(str(target), isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")  # SQLite only: PostgreSQL always checks them
    try:
        # SQLite: take the write lock now, not at the first write. PostgreSQL locks rows as they are written.
        conn.execute("BEGIN IMMEDIATE" if sql.dialect_of(conn) == sql.SQLITE else "BEGIN")
        try:
            yield conn
            bump_revision(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def bump_revision(conn, after: int | None = None) -> None:
    """Increase the data revision by one and note when (inside the caller's transaction).

    With ``after``, the revision becomes ``after + 1`` instead: a rebuilt database continuing
    the count of the one it replaces.
    """
    if after is None:
        sql.run(conn, _q().bump)
    else:
        set_meta(conn, "revision", str(after + 1))
    # Whole seconds since the epoch: HTTP's Last-Modified without a look at the file.
    set_meta(conn, "written_at", str(int(utcnow().timestamp())))


def get_meta(conn) -> Mapping[str, str]:
    """Return the whole meta table (a read connection answers from its copy, read-only)."""
    if hasattr(conn, "meta"):  # a read connection, SQLite's or PostgreSQL's
        return conn.meta()
    return {row[0]: row[1] for row in sql.run(conn, _q().meta)}


def set_meta(conn, key: str, value: str | None) -> None:
    """Set (or with ``None`` delete) one meta key."""
    if value is None:
        sql.run(conn, _q().delete, key=key)
    else:
        sql.run(conn, _q().set, key=key, value=str(value))


def revision(conn) -> int:
    """Return the current data revision (a read connection answers from its copy of ``meta``)."""
    if hasattr(conn, "meta"):  # a read connection, SQLite's or PostgreSQL's
        return int(get_meta(conn).get("revision") or 0)
    found = sql.scalar(conn, _q().revision)
    return int(found) if found is not None else 0


@sql.collection
def _q() -> SimpleNamespace:
    """Return the statements of the writes' meta rows, on every engine (``portal.data.statements``)."""
    m = sql.table("meta")
    revision_row = m.c.key == sql.const("revision")
    return SimpleNamespace(
        bump=sql.Statement(sa.update(m).where(revision_row).values(
            value=sa.cast(sa.cast(m.c.value, sa.BigInteger) + 1, sa.Text))),
        meta=sql.Statement(sa.select(m.c.key, m.c.value)),
        delete=sql.Statement(sa.delete(m).where(m.c.key == sa.bindparam("key"))),
        set=sql.Statement(sql.upsert(m, ["key"], {"key": sa.bindparam("key"), "value": sa.bindparam("value")},
                                     ["value"])),
        revision=sql.Statement(sa.select(m.c.value).where(revision_row)),
    )


def data_key(meta: Mapping[str, str]) -> str:
    """Return what names the data's state (``get_meta``): ``<build>.<revision>``, or the revision alone.

    Caches and validators are keyed by this, not by the revision alone. A rebuild
    (``portal.build``) continues the revision from the old database's, but a write that
    commits while the rebuild copies its data in takes the same number the rebuild then
    gives the new data; the build id, new with every build, tells the two apart.
    """
    build = meta.get("build_id")
    number = meta.get("revision") or "0"
    return f"{build[:12]}.{number}" if build else number
