"""Upgrade a PostgreSQL portal in place: apply the migrations it lacks, derived from the SQLite ones.

The SQLite migrations (``portal.data.migrations``) stay the one source of the schema. For each migration
a PostgreSQL portal lacks, the schema before it and after it are made on SQLite
(``portable.reference``) and compared; what differs becomes PostgreSQL statements:

- a new table is created (with its foreign keys, indexes and geometry index); a table gone is dropped;
- a new column is added (``ALTER TABLE ... ADD COLUMN``, with its default); a column gone is dropped;
- a new constraint of an existing table is added; a foreign key that is new, gone or declared
  differently is added, dropped, or dropped and added;
- an index that is new, gone or declared differently is created, dropped, or dropped and created.

The rows a migration writes are its data step (``migrations.data_steps``), written once for every
engine. A difference that cannot be applied this way (a column's type, nullability, default or
the primary key changed; a UNIQUE or CHECK constraint dropped or changed; a table or column
dropped beside a new one, which may be a rename that would lose its rows) is refused with
``NotPortable``, naming it: such a migration needs a step written for PostgreSQL by hand before
it can be released.

Everything is applied in one transaction, with the record of the migrations applied
(``_sqlite_migrations``, as on SQLite): PostgreSQL's DDL is transactional, so a failure or a
killed process leaves the portal as it was. The caller holds the advisory lock nodes starting
together take (``build.ensure_postgres``). Nothing here knows Flask.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlite_utils
from sqlalchemy.dialects import postgresql

from portal.data import migrations, portable
from portal.data.portable import Reference

MIGRATIONS_TABLE = "_sqlite_migrations"


class OtherVersion(RuntimeError):
    """A PostgreSQL portal a newer or another version made; the message says which to run."""


class NotPortable(RuntimeError):
    """A migration changes the schema in a way that has no PostgreSQL statement derived for it."""


def wanted() -> list[str]:
    """Return the names of this version's migrations, in order."""
    return [m.name for m in migrations.MIGRATIONS.pending(sqlite_utils.Database(memory=True))]


def applied(conn) -> list[str]:
    """Return the names of the migrations a PostgreSQL portal has had, in order."""
    return [r[0] for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = %s"
                                       " ORDER BY id", (migrations.MIGRATIONS.name,))]


def pending(conn) -> list[str]:
    """Return the migrations a PostgreSQL portal lacks; refuse one made by a newer or another version."""
    found, names = applied(conn), wanted()
    if found == names[:len(found)]:
        return names[len(found):]
    last = found[-1] if found else "none"
    raise OtherVersion(f"the PostgreSQL portal was made by a newer or another version (its last migration is"
                       f" {last}, this version's is {names[-1]}); run the version that made it")


def upgrade(conn) -> list[str]:
    """Apply the migrations a PostgreSQL portal lacks, in one transaction; return their names.

    ``conn``: a psycopg connection in autocommit mode (``statements.connect_postgres``).
    """
    names = wanted()
    conn.execute("BEGIN")
    try:
        missing = pending(conn)
        for name in missing:
            index = names.index(name)
            after = names[index + 1] if index + 1 < len(names) else None
            for statement in changes(portable.reference(name), portable.reference(after)):
                conn.execute(statement)
            step = migrations.data_steps.get(name)
            if step is not None:
                step(conn)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at)"
                         " VALUES (%s, %s, %s)",
                         (migrations.MIGRATIONS.name, name, str(datetime.now(timezone.utc))))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return missing


def changes(old: Reference, new: Reference) -> list[str]:
    """Return the PostgreSQL statements that take a portal from one schema to the next."""
    dialect = postgresql.psycopg.dialect()
    old_pg, new_pg = portable.postgres_metadata(old), portable.postgres_metadata(new)
    old_keys, new_keys = _foreign_keys(old), _foreign_keys(new)
    old_indexes, new_indexes = _indexes(old), _indexes(new)

    def text(element) -> str:
        return str(element.compile(dialect=dialect)).strip()

    gone = [name for name in old_pg.tables if name not in new_pg.tables]
    if gone and any(name not in old_pg.tables for name in new_pg.tables):
        raise NotPortable(f"a migration drops {', '.join(gone)} and adds a table: a rename would lose its"
                          " rows here, so write its PostgreSQL step by hand")
    # A key is named by its table and columns: one declared differently is dropped and added again.
    changed = {name for name, (key, _) in old_keys.items()
               if name in new_keys and new_keys[name][0] != key}
    out = [f'DROP INDEX "{name}"' for name, sql in old_indexes.items() if new_indexes.get(name) != sql]
    out += [f'ALTER TABLE "{key.table}" DROP CONSTRAINT "{name}"' for name, (key, _) in old_keys.items()
            if (name not in new_keys or name in changed) and key.table in new_pg.tables]
    out += [f'DROP TABLE "{name}" CASCADE' for name in gone]
    for name, table in new_pg.tables.items():
        if name not in old_pg.tables:
            out.append(text(sa.schema.CreateTable(table)))
        else:
            out += _table_changes(old_pg.tables[name], table, text)
    out += [text(add) for name, (_, add) in new_keys.items() if name not in old_keys or name in changed]
    out += [sql for name, sql in new_indexes.items() if old_indexes.get(name) != sql]
    return out


def _table_changes(old: sa.Table, new: sa.Table, text) -> list[str]:
    """Return the statements that change one existing table; refuse what cannot be derived."""
    def describe(column: sa.Column) -> tuple:
        default = getattr(column.server_default, "arg", None)  # an identity column has no default
        return text(column.type), column.nullable, str(default), column.identity is not None

    dropped = [c.name for c in old.columns if c.name not in new.columns]
    if dropped and any(c.name not in old.columns for c in new.columns):
        raise NotPortable(f"{new.name} drops {', '.join(dropped)} and adds a column: a rename would lose its"
                          " values here, so write its PostgreSQL step by hand")
    out = []
    for column in new.columns:
        if column.name not in old.columns:
            out.append(f'ALTER TABLE "{new.name}" ADD COLUMN {text(sa.schema.CreateColumn(column))}')
        elif describe(column) != describe(old.columns[column.name]):
            raise NotPortable(f"{new.name}.{column.name} changes its type, nullability or default: write its"
                              " PostgreSQL step by hand")
    out += [f'ALTER TABLE "{new.name}" DROP COLUMN "{name}"' for name in dropped]
    if [c.name for c in old.primary_key] != [c.name for c in new.primary_key]:
        raise NotPortable(f"{new.name} changes its primary key: write its PostgreSQL step by hand")
    old_constraints = {_constraint(c) for c in old.constraints if _constraint(c)}
    new_constraints = {_constraint(c) for c in new.constraints if _constraint(c)}
    if old_constraints - new_constraints:  # SQLite names none of them: nothing to drop by name
        raise NotPortable(f"{new.name} drops or changes a UNIQUE or CHECK constraint: write its PostgreSQL"
                          " step by hand")
    out += [text(sa.schema.AddConstraint(c)) for c in new.constraints
            if _constraint(c) and _constraint(c) not in old_constraints]
    return out


def _constraint(constraint) -> str | None:
    """Describe a UNIQUE or CHECK constraint by what it says (SQLite's constraints have no names)."""
    if isinstance(constraint, sa.CheckConstraint):
        return f"CHECK {constraint.sqltext}"
    if isinstance(constraint, sa.UniqueConstraint) and not isinstance(constraint, sa.PrimaryKeyConstraint):
        return f"UNIQUE {sorted(constraint.columns.keys())}"
    return None


def _foreign_keys(ref: Reference) -> dict[str, tuple]:
    """Return a schema's foreign keys by constraint name: (the key, the statement adding it)."""
    adds = portable.postgres_foreign_keys(ref)
    return {add.element.name: (key, add) for key, add in zip(ref.foreign_keys, adds)}


def _indexes(ref: Reference) -> dict[str, str]:
    """Return a schema's PostgreSQL index statements by index name."""
    out = {}
    for sql in portable.postgres_indexes(ref):
        found = re.match(r'\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([^"\s]+)"?',
                         sql, re.I)
        out[found.group(1)] = " ".join(sql.split())
    return out
