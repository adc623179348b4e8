"""Copy a whole portal database between SQLite and PostgreSQL (either way, or to its own kind).

``move(source, target)`` reads the source in one snapshot and copies every table in
dependency order, in batches, then compares the row counts of every table and a digest of
every geometry (read back as WKB) before anything is committed:

- a PostgreSQL target is written in one transaction (tables, rows, sequences, foreign keys,
  indexes): on any failure, including Ctrl-C, it is rolled back and the database is as it was;
- an SQLite target is built in a temporary file beside it (schema from the migrations) and
  renamed into place only once checked.

A target that holds tables is refused unless ``replace`` is given. Nothing here knows Flask.
"""
from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from portal.data import migrations, portable
from portal.data.engines import describe, engine_for, is_postgres
from portal.data.portable import Reference
from portal.data.tablecopy import CopyFailed, Count, TableCopy, first_line, writing

__all__ = ["move", "tables_in", "Refusal", "CopyFailed", "Count"]

POSTGIS_TABLES = {"spatial_ref_sys"}  # what CREATE EXTENSION postgis puts in the schema


class Refusal(Exception):
    """Bad input (a missing file, not a portal database, an unreachable server, a non-empty target)."""


def move(source: str, target: str, *, replace: bool = False, batch: int = 1000,
         progress: Callable[[str, int], object] | None = None, totals: Callable[[dict], object] | None = None,
         before: str | None = None) -> list[Count]:
    """Copy the portal at ``source`` to ``target``; return the per-table counts (all equal).

    ``totals`` is called with the source's row count per table before the copy starts,
    ``progress`` with a table's name and the rows just copied after each batch. ``before``
    (a migration's name) copies a portal of an older version's schema, the one the migrations
    before it make, as that version's ``migrate_db`` did.
    """
    if _same(source, target):
        raise Refusal(f"FROM and TO are the same database: {describe(source)}")
    ref = portable.reference(before)
    src_engine = _engine(source, readonly=True)
    try:
        with _connect(src_engine, source) as src:
            _check_source(src, source, ref)
            counts = {t.name: src.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for t in ref.tables()}
            if totals:
                totals(counts)
            copy = TableCopy(ref, src, is_postgres(source), batch, progress or (lambda *_: None))
            if is_postgres(target):
                return _to_postgres(copy, target, replace)
            return _to_sqlite(copy, Path(target), replace)
    finally:
        src_engine.dispose()


def _same(a: str, b: str) -> bool:
    if is_postgres(a) != is_postgres(b):
        return False
    if is_postgres(a):
        return describe(a) == describe(b)
    return Path(a).resolve() == Path(b).resolve()


def _engine(target: str, readonly: bool = False) -> sa.Engine:
    if not is_postgres(target):
        if "://" in target:
            raise Refusal(f"{target}: give an SQLite file or a postgresql:// URL")
        path = Path(target)
        if readonly and not path.is_file():
            raise Refusal(f"{target}: no such file" if not path.exists() else f"{target} is not a file")
    try:
        return engine_for(target, readonly=readonly)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise Refusal(f"{describe(target)}: not a usable database URL ({exc})") from None


@contextmanager
def _connect(engine: sa.Engine, target: str):
    """Yield a connection in a transaction; an unreachable server or unreadable file is a refusal."""
    try:
        conn = engine.connect()
        conn.begin()
    except sa.exc.DBAPIError as exc:
        raise Refusal(f"cannot open {describe(target)}: {first_line(exc)}") from None
    try:
        yield conn
    finally:
        conn.close()  # rolls back whatever was not committed


def tables_in(conn: sa.Connection, target: str) -> dict[str, int]:
    """Return the tables a database holds (not SQLite's or PostGIS's own) and their row counts."""
    try:
        names = sa.inspect(conn).get_table_names()
    except sa.exc.DBAPIError as exc:
        raise Refusal(f"{describe(target)} is not a portal database ({first_line(exc)})") from None
    names = [n for n in names if not n.startswith("sqlite_") and n not in POSTGIS_TABLES]
    return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in sorted(names)}


def _check_source(conn: sa.Connection, source: str, ref: Reference) -> None:
    """Refuse a source that is not a portal database of this version's schema."""
    name = describe(source)
    found = tables_in(conn, source)
    revision = sa.text("SELECT count(*) FROM meta WHERE key = 'revision'")
    if "meta" not in found or conn.execute(revision).scalar_one() != 1:
        raise Refusal(f"{name} is not a portal database (no meta table with a revision)")
    inspector = sa.inspect(conn)
    expected = portable.postgres_metadata(ref).tables if is_postgres(source) else ref.metadata.tables
    problems = []
    for table in expected.values():
        if table.name not in found:
            problems.append(f"no table {table.name}")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)  # PostGIS's geometry type is not SQLAlchemy's
            have = {c["name"] for c in inspector.get_columns(table.name)}
        wanted = set(table.columns.keys())
        problems += [f"{table.name} has no column {c}" for c in table.columns.keys() if c not in have]
        problems += [f"{table.name}.{c} is not in this version's schema" for c in sorted(have - wanted)]
    problems += [f"table {t} is not in this version's schema" for t in found if t not in ref.metadata.tables]
    if problems:
        raise Refusal(f"{name} is not a portal database of this version's schema ({'; '.join(problems[:5])});"
                      " a database an older version made gets its migrations when a staff script opens it")


def _refuse_nonempty(found: dict[str, int], target: str, replace: bool, ref: Reference) -> None:
    if not found:
        return
    full = [f"{t} ({n} rows)" for t, n in found.items() if n]
    empty = len(found) - len(full)
    listing = ", ".join(full + ([f"{empty} empty table{'s' if empty > 1 else ''}"] if empty else []))
    if not replace:
        raise Refusal(f"{describe(target)} is not empty; it holds {listing}; add --replace to replace it")
    foreign = [t for t in found if t not in ref.metadata.tables]
    if foreign:
        raise Refusal(f"{describe(target)} holds tables that are not the portal's ({', '.join(foreign)});"
                      " only a portal database is replaced")


def _to_postgres(copy: TableCopy, target: str, replace: bool) -> list[Count]:
    """Write the copy into a PostgreSQL database in one transaction."""
    engine = _engine(target)
    try:
        with _connect(engine, target) as conn:
            found = tables_in(conn, target)
            _refuse_nonempty(found, target, replace, copy.ref)
            pg = portable.postgres_metadata(copy.ref)
            with writing(target):
                for name in found:
                    conn.execute(sa.text(f'DROP TABLE "{name}" CASCADE'))
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
                pg.create_all(conn)
                copy.rows(conn, pg.tables)
                for table in copy.ref.tables():
                    key = portable.counter(pg.tables[table.name])
                    if key:
                        top = copy.high_water(table)
                        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, :called)"),
                                     {"t": f'"{table.name}"', "c": key, "v": max(top, 1), "called": top > 0})
                for statement in portable.postgres_foreign_keys(copy.ref):
                    conn.execute(statement)
                for statement in portable.postgres_indexes(copy.ref):
                    conn.execute(sa.text(statement))
                counts = copy.check(conn, pg.tables)
                conn.commit()
            return counts
    finally:
        engine.dispose()


def _to_sqlite(copy: TableCopy, target: Path, replace: bool) -> list[Count]:
    """Build the copy in a temporary file beside ``target``, check it, then move it into place."""
    if target.is_dir():
        raise Refusal(f"{target} is a folder")
    if target.exists() and target.stat().st_size > 0:
        engine = _engine(str(target), readonly=True)
        try:
            with _connect(engine, str(target)) as conn:
                _refuse_nonempty(tables_in(conn, str(target)), str(target), replace, copy.ref)
        finally:
            engine.dispose()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.copying-{os.getpid()}")
    leftovers = (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    try:
        migrations.migrate(tmp, copy.ref.before)  # the same schema a new portal database gets
        engine = engine_for(tmp)
        try:
            with writing(tmp), engine.begin() as conn:
                tables = portable.sqlite_tables(copy.ref)
                for table in reversed(copy.ref.tables()):
                    conn.execute(tables[table.name].delete())  # what the migrations themselves wrote
                copy.rows(conn, tables)
                for table in copy.ref.tables():
                    if table.name in copy.ref.autoincrement:
                        top = copy.high_water(table)
                        conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"),
                                     {"t": table.name})
                        if top:
                            conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
                                         {"t": table.name, "v": top})
                counts = copy.check(conn, tables)
        finally:
            engine.dispose()
        checkpoint = sqlite3.connect(tmp)
        try:
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file is the whole database
        finally:
            checkpoint.close()
        for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, target)
        return counts
    finally:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
