"""One statement for every engine: SQLAlchemy Core expressions, compiled once per dialect, run on the driver.

A statement is written once, as a Core expression over the portal's tables as the migrations
make them (``portable.reference()``: the same single source the PostgreSQL schema comes from).
SQLAlchemy writes it for SQLite or for PostgreSQL the first time it runs there; after that the
SQL text is kept and run on the connection's own driver (Python's ``sqlite3``, or psycopg) with
named parameters, so a statement on a request's path costs what the driver costs. Run through
SQLAlchemy's own ``Connection.execute`` instead, a short count on the reports table takes 33 µs
where ``sqlite3`` takes 10 (``docs/deploy.md``, "Serving from PostgreSQL").

Values go to the driver as they are (numbers, text, bytes): the portal's columns hold nothing a
type would have to convert. Where the dialects differ in meaning, not just in spelling, a small
construct says it once:

- ``truthy(column)``: an integer column used as a yes/no (SQLite's ``WHERE counted``, which a
  partial index is also declared with); PostgreSQL wants ``counted <> 0`` for the same thing.
- ``geometry_in(value)`` and ``geometry_out(column)``: geometries are WKB bytes in Python;
  PostGIS keeps them as ``geometry`` (SRID 4326), made and read with ``ST_GeomFromWKB`` and
  ``ST_AsBinary``.
- ``upsert(...)`` and ``insert_ignoring(...)``: ``INSERT ... ON CONFLICT DO UPDATE`` / ``DO
  NOTHING``, which SQLAlchemy builds with a construct of each dialect's own.
- ``const(value)``: a constant written into the SQL, not bound. A partial index declared
  ``WHERE state = 'draft'`` serves only a query that says ``'draft'`` itself: SQLite cannot
  know what a bound value will be when it plans the statement.

A connection is recognised by its type: ``sqlite3.Connection`` is SQLite, anything else is
PostgreSQL (psycopg; ``connect_postgres`` opens one that hands rows out like ``sqlite3.Row``).
"""
from __future__ import annotations

import select
import sqlite3
from functools import cache
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

SQLITE, POSTGRESQL = "sqlite", "postgresql"
_DIALECTS = {
    SQLITE: lambda: sqlite.pysqlite.dialect(paramstyle="named"),
    POSTGRESQL: lambda: postgresql.psycopg.dialect(paramstyle="pyformat"),
}


@cache
def _dialect(name: str):
    made = _DIALECTS[name]()
    # No casts written into the SQL: the reference tables' INTEGER would become PostgreSQL's
    # 32-bit integer, while the columns are 64-bit there. psycopg sends each value's own type.
    made.bind_typing = BindTyping.NONE
    return made


@cache
def tables() -> dict[str, sa.Table]:
    """Return the portal's tables by name (as the migrations make them)."""
    from portal.data import portable

    return dict(portable.reference().metadata.tables)


def table(name: str) -> sa.Table:
    """Return one of the portal's tables."""
    return tables()[name]


class truthy(ColumnElement):
    """An integer column read as yes (non-zero) or no, the same way on every engine."""

    # Untyped on purpose: typed Boolean, SQLAlchemy would write SQLite's ``counted = 1``, which
    # a partial index declared ``WHERE counted`` does not serve.
    type = sa.types.NullType()
    inherit_cache = True

    def __init__(self, column):
        self.column = column


@compiles(truthy)
def _truthy(element, compiler, **kw):
    return compiler.process(element.column, **kw)


@compiles(truthy, "postgresql")
def _truthy_postgres(element, compiler, **kw):
    return f"{compiler.process(element.column, **kw)} <> 0"


def const(value: str | int):
    """Return a constant written into the statement's SQL (see the module's docstring)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"const takes text or a whole number, not {value!r}")
    if isinstance(value, int):
        return sa.literal_column(str(value), sa.Integer)
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


class geometry_in(ColumnElement):
    """A WKB value (bytes, lon/lat) going into a geometry column: as it is on SQLite, made a PostGIS
    geometry of SRID 4326 on PostgreSQL (``ST_GeomFromWKB``)."""

    type = sa.LargeBinary()
    inherit_cache = True

    def __init__(self, value):
        self.value = value


@compiles(geometry_in)
def _geometry_in(element, compiler, **kw):
    return compiler.process(element.value, **kw)


@compiles(geometry_in, "postgresql")
def _geometry_in_postgres(element, compiler, **kw):
    from portal.data.portable import SRID

    return f"ST_GeomFromWKB({compiler.process(element.value, **kw)}, {SRID})"


class geometry_out(ColumnElement):
    """A geometry column read as WKB bytes on every engine (``ST_AsBinary`` on PostgreSQL)."""

    type = sa.LargeBinary()
    inherit_cache = True

    def __init__(self, column):
        self.column = column
        self.name = column.name


@compiles(geometry_out)
def _geometry_out(element, compiler, **kw):
    return compiler.process(element.column, **kw)


@compiles(geometry_out, "postgresql")
def _geometry_out_postgres(element, compiler, **kw):
    return f"ST_AsBinary({compiler.process(element.column, **kw)}) AS {element.name}"


def _dialect_insert(dialect: str, table: sa.Table):
    """Return the dialect's own ``insert`` of a table (the one that knows ``ON CONFLICT``)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (pg_insert if dialect == POSTGRESQL else sqlite_insert)(table)


def upsert(table: sa.Table, keys: list[str], values: dict, update: list[str] | dict, returning=None):
    """Return an "insert, or update when the key exists" for ``Statement``.

    Each dialect spells ``ON CONFLICT`` with its own construct in SQLAlchemy; the statement is
    made per dialect from the same description. ``values``: column → value (a ``bindparam``);
    ``update``: the columns to take from the inserted row, or column → new value (e.g. a count
    plus one); ``returning``: columns to give back.
    """
    def make(dialect: str):
        found = _dialect_insert(dialect, table).values(values)
        changes = update if isinstance(update, dict) else {c: getattr(found.excluded, c) for c in update}
        found = found.on_conflict_do_update(index_elements=keys, set_=changes)
        return found.returning(*returning) if returning is not None else found

    return make


def insert_ignoring(table: sa.Table, values: dict | None = None, *, columns: list | None = None, select=None,
                    keys: list[str] | None = None, returning=None):
    """Return an "insert unless a unique key already holds the row" (``ON CONFLICT DO NOTHING``) for ``Statement``.

    SQLite's ``INSERT OR IGNORE`` said it before; ``ON CONFLICT DO NOTHING`` says it on both
    engines. ``values``: column → value; or ``columns`` filled from a ``select``. ``keys``: the
    unique key meant (any, when not given: needed for a unique index on expressions);
    ``returning``: columns given back for a row inserted (nothing for one ignored).
    """
    def make(dialect: str):
        found = _dialect_insert(dialect, table)
        found = found.values(values) if select is None else found.from_select(columns, select)
        found = found.on_conflict_do_nothing(index_elements=keys)
        return found.returning(*returning) if returning is not None else found

    return make


class Statement:
    """A Core expression with its SQL text per dialect, made on first use.

    ``expression`` is a Core statement, or a function of the dialect's name returning one (for
    the few constructs SQLAlchemy spells per dialect, such as ``upsert``).
    """

    __slots__ = ("expression", "_made")

    def __init__(self, expression):
        self.expression = expression
        self._made: dict[str, tuple[str, dict]] = {}

    def sql(self, dialect: str) -> tuple[str, dict]:
        """Return the statement's SQL for a dialect and the values of the literals it binds."""
        made = self._made.get(dialect)
        if made is None:
            expression = self.expression(dialect) if callable(self.expression) else self.expression
            # An IN list given with the expression becomes one bound value per item here.
            compiled = expression.compile(dialect=_dialect(dialect),
                                          compile_kwargs={"render_postcompile": True})
            made = self._made[dialect] = (str(compiled), dict(compiled.params))
        return made


_collections: list = []


def collection(builder):
    """Mark a module's function that returns its statements (a namespace), so ``prepare`` finds them.

    The function is called once (its answer is kept): statements are built on first use, not when
    the module is imported, since the reference tables take a moment to make.
    """
    made = cache(builder)
    _collections.append(made)
    return made


def prepare(dialect: str) -> int:
    """Compile every collection's statements for a dialect now (before a server forks); return how many."""
    count = 0

    def walk(found):
        nonlocal count
        if isinstance(found, Statement):
            found.sql(dialect)
            count += 1
        elif isinstance(found, SimpleNamespace):
            for item in vars(found).values():
                walk(item)

    for builder in _collections:
        walk(builder())
    return count


def dialect_of(conn) -> str:
    """Return the dialect of a driver connection."""
    return SQLITE if isinstance(conn, sqlite3.Connection) else POSTGRESQL


def run(conn, statement: Statement, **values):
    """Run a statement on a driver connection with named values; return the driver's cursor."""
    sql, literals = statement.sql(dialect_of(conn))
    return conn.execute(sql, {**literals, **values} if literals else values)


def run_many(conn, statement: Statement, rows: list[dict]) -> None:
    """Run a statement once per row of named values (a bulk insert), on either driver."""
    sql, literals = statement.sql(dialect_of(conn))
    if literals:
        rows = [{**literals, **row} for row in rows]
    if isinstance(conn, sqlite3.Connection):
        conn.executemany(sql, rows)
    else:
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)


def scalar(conn, statement: Statement, **values):
    """Run a statement and return the first column of its first row (None without a row)."""
    row = run(conn, statement, **values).fetchone()
    return None if row is None else row[0]


class Row(tuple):
    """A PostgreSQL row read like ``sqlite3.Row``: by position, by column name, and as a mapping."""

    __slots__ = ()
    _names: tuple[str, ...] = ()

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor):
    """psycopg row factory: rows of ``Row`` named by the cursor's columns."""
    if cursor.description is None:
        return tuple
    return _row_type(tuple(c.name for c in cursor.description))


@cache
def _row_type(names: tuple[str, ...]) -> type:
    """Return the ``Row`` class of a result's column names, made once per shape of result."""
    return type("Row", (Row,), {"__slots__": (), "_names": names})


def connect(target):
    """Open a write connection (autocommit) to an SQLite path or a ``postgresql://`` URL."""
    from portal.listening import store

    return store.connect(target)


def still_open(conn) -> bool:
    """Return whether a kept PostgreSQL connection can still be used, without a round trip to the server.

    A server that restarts, fails over or ends an idle session closes the connection: it sends
    a notice (or end-of-file), so the socket of a connection idle on our side turns readable.
    A connection kept between requests is checked this way before its next use.
    """
    if conn.closed or conn.broken:
        return False
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return not readable


def connect_postgres(url: str):
    """Open a psycopg connection in autocommit mode (a transaction is an explicit ``BEGIN``), rows like SQLite's."""
    import psycopg

    from portal.data.engines import postgres_url

    dsn = postgres_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=True, row_factory=_rows)
