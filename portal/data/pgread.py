"""The read connection of a web worker when the portal's data lives in PostgreSQL.

It answers like ``db.ReadConnection`` (the SQLite one): kept open between requests, one
read-only snapshot per request (``begin``: ``REPEATABLE READ READ ONLY``, so every query of a
request sees the same data and the ETag names what the body was built from), and ``meta()``.

Freshness across nodes: ``meta`` is read once per request, in the request's snapshot, so a
write committed on any node (a staff script, another node's import) is seen by every node on
its next request: the revision it carries names the new data, and the snapshot is rebuilt.
One short query per request; SQLite's ``PRAGMA data_version`` has no PostgreSQL twin.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import psycopg
import sqlalchemy as sa

from portal.data import statements as sql


class PostgresRead:
    """A read-only PostgreSQL connection with the ``ReadConnection`` interface the web side uses."""

    def __init__(self, url: str):
        self._url = url
        self._conn = sql.connect_postgres(url)
        self._meta: Mapping[str, str] | None = None

    def begin(self) -> None:
        """Start the request's read snapshot, on a new connection if the server closed the kept one.

        A restart or failover of PostgreSQL (or an idle session ended) costs no request: a closed
        connection is seen before it is used (``statements.still_open``), and one found closed by
        the BEGIN itself, before anything of the request was read, is replaced and the BEGIN repeated.
        """
        self._meta = None
        if not sql.still_open(self._conn):
            self._reopen()
        try:
            self._conn.execute(_BEGIN)
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            self._reopen()
            self._conn.execute(_BEGIN)

    def _reopen(self) -> None:
        self._conn.close()
        self._conn = sql.connect_postgres(self._url)

    def execute(self, statement, values=None):
        """Run SQL on the connection (``statements.run`` passes the dialect's own text)."""
        return self._conn.execute(statement, values)

    def cursor(self):
        return self._conn.cursor()

    def meta(self) -> Mapping[str, str]:
        """Return the meta table as this request's snapshot holds it (read once per request)."""
        if self._meta is None:
            rows = sql.run(self._conn, _meta_statement())
            self._meta = MappingProxyType({row[0]: row[1] for row in rows})
        return self._meta

    def rollback(self) -> None:
        """End the request's snapshot (nothing was written); a connection lost meanwhile has none to end."""
        self._meta = None
        if not self._conn.broken and self._conn.info.transaction_status != 0:  # a transaction is open
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        """As ``with`` on an SQLite connection: the block's transaction ends; the connection stays open."""
        self.rollback()


_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


@sql.collection
def _meta_statement() -> sql.Statement:
    meta = sql.table("meta")
    return sql.Statement(sa.select(meta.c.key, meta.c.value))
