"""Copying a portal's tables from a source connection, and checking the copy (``portal.data.transfer``)."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from portal.data import portable
from portal.data.engines import describe
from portal.data.portable import Reference


class CopyFailed(Exception):
    """The copy went wrong or did not check out; the target was left as it was."""

    def __init__(self, message: str, counts: list[Count] | None = None):
        super().__init__(message)
        self.counts = counts or []


@dataclass
class Count:
    """One table's rows in the source and in the target, and whether its geometries came back equal."""

    table: str
    source: int
    target: int
    geometry: bool | None = None  # None: the table has no geometry column

    @property
    def ok(self) -> bool:
        return self.source == self.target and self.geometry is not False


class TableCopy:
    """What a copy reads from: the source connection in its snapshot, and its tables."""

    def __init__(self, ref: Reference, src: sa.Connection, from_postgres: bool, batch: int, progress):
        self.ref, self.src, self.batch, self.progress = ref, src, batch, progress
        self.from_postgres = from_postgres
        self.tables = portable.postgres_metadata(ref).tables if from_postgres else portable.sqlite_tables(ref)

    def rows(self, conn: sa.Connection, target_tables) -> None:
        """Copy every table's rows into ``conn``, in dependency order, ``batch`` rows at a time."""
        for table in self.ref.tables():
            source, dest = self.tables[table.name], target_tables[table.name]
            # In the order stored where a hidden rowid keeps it (rows are given new rowids in that order).
            order = [source.c[portable.ROWID]] if portable.ROWID in source.c else source.primary_key.columns
            query = sa.select(source).order_by(*order)
            try:
                result = self.src.execution_options(yield_per=self.batch).execute(query)
                for part in result.partitions():
                    conn.execute(dest.insert(), [row._asdict() for row in part])
                    self.progress(table.name, len(part))
            except sa.exc.DBAPIError as exc:
                raise CopyFailed(f"copying table {table.name} failed: {first_line(exc)}") from None

    def high_water(self, table: sa.Table) -> int:
        """Return the highest id the source has given in a table's numbering column (``portable.counter``)."""
        key = portable.counter(self.tables[table.name])
        top = self.src.execute(sa.select(sa.func.max(self.tables[table.name].c[key]))).scalar() or 0
        if self.from_postgres:
            seq = self.src.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": f'"{table.name}"', "c": key}).scalar()
            last, called = self.src.execute(sa.text(f"SELECT last_value, is_called FROM {seq}")).one()
            return max(top, last if called else 0)
        if table.name in self.ref.autoincrement:
            seq = self.src.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"),
                                   {"t": table.name}).scalar()
            return max(top, seq or 0)
        return top

    def check(self, conn: sa.Connection, target_tables) -> list[Count]:
        """Compare every table's row count and geometry digest; raise CopyFailed on a difference."""
        out = []
        for table in self.ref.tables():
            source, dest = self.tables[table.name], target_tables[table.name]
            count = Count(table.name, *(c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                                        for c, t in ((self.src, source), (conn, dest))))
            geometry = self.ref.geometry_columns(table.name)
            if geometry:
                count.geometry = _digest(self.src, source, geometry) == _digest(conn, dest, geometry)
            out.append(count)
        wrong = [c for c in out if not c.ok]
        if wrong:
            raise CopyFailed("the copy does not match its source: " + ", ".join(
                f"{c.table} ({c.source} rows, copied {c.target}"
                f"{', geometries differ' if c.geometry is False else ''})" for c in wrong), out)
        return out


def _digest(conn: sa.Connection, table: sa.Table, columns: list[str]) -> str:
    """Return a SHA-256 of a table's keys and geometries as WKB, in key order."""
    keys = list(table.primary_key.columns)
    query = sa.select(*keys, *(table.c[c] for c in columns)).order_by(*keys)
    h = hashlib.sha256()
    for row in conn.execution_options(yield_per=1000).execute(query):
        for value in row:
            h.update(repr(value).encode() if not isinstance(value, bytes) else value)
    return h.hexdigest()


@contextmanager
def writing(target):
    """Turn a database error while writing into CopyFailed naming the target."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise CopyFailed(f"writing to {describe(str(target))} failed: {first_line(exc)}") from None


def first_line(exc: sa.exc.DBAPIError) -> str:
    """Return the first line of a database error's message."""
    return (str(exc.orig).strip().splitlines() or ["?"])[0]
