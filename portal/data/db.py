"""The SQLite database: schema, connections, the data revision.

The web side opens the file read-only; every write (imports, incidents, the
demo build) goes through functions the staff scripts call, each in one
transaction that also bumps ``meta.revision`` so every worker process notices
the change on its next request. The write transaction (``writing``) and the
revision and ``meta`` it keeps work on a PostgreSQL portal too (a ``postgresql://``
URL; ``portal.data.statements``).
"""
from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import sqlalchemy as sa
import sqlite_utils
from sqlite_utils.migrations import Migrations

from portal.data import statements as sql

migrations = Migrations("portal")


@migrations()
def m001_layers_and_places(db: sqlite_utils.Database) -> None:
    """Create meta, versioned layers, towns and coverage."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        """CREATE TABLE layers (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('towns', 'coverage')),
            created_at TEXT NOT NULL,
            author TEXT NOT NULL,
            source TEXT NOT NULL,
            checksum TEXT,
            feature_count INTEGER NOT NULL,
            as_of TEXT,
            report TEXT,
            replaced_id INTEGER REFERENCES layers(id)
        )"""
    )
    db.execute(
        """CREATE TABLE towns (
            layer_id INTEGER NOT NULL REFERENCES layers(id),
            slug TEXT NOT NULL,
            name TEXT NOT NULL,
            name_ru TEXT,
            population INTEGER,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            alt_names TEXT NOT NULL DEFAULT '[]',
            geom BLOB NOT NULL,
            PRIMARY KEY (layer_id, slug)
        )"""
    )
    db.execute(
        """CREATE TABLE coverage (
            id INTEGER PRIMARY KEY,
            layer_id INTEGER NOT NULL REFERENCES layers(id),
            feature_id TEXT,
            technology TEXT NOT NULL,
            status TEXT NOT NULL,
            max_down_mbps REAL,
            max_up_mbps REAL,
            available_from TEXT,
            geom BLOB NOT NULL
        )"""
    )
    db.execute("CREATE INDEX coverage_layer ON coverage(layer_id)")
    db.execute("INSERT INTO meta VALUES ('revision', '0')")


@migrations()
def m002_incidents(db: sqlite_utils.Database) -> None:
    """Create incidents, their services, towns, areas, updates and the audit log."""
    db.execute(
        """CREATE TABLE incidents (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('outage', 'degraded', 'maintenance')),
            cause TEXT,
            started_at TEXT NOT NULL,
            resolved_at TEXT,
            scheduled_end TEXT,
            created_at TEXT NOT NULL,
            author TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE incident_services (
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            service TEXT NOT NULL,
            PRIMARY KEY (incident_id, service)
        )"""
    )
    db.execute(
        """CREATE TABLE incident_towns (
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            slug TEXT NOT NULL,
            PRIMARY KEY (incident_id, slug)
        )"""
    )
    db.execute(
        """CREATE TABLE incident_areas (
            id INTEGER PRIMARY KEY,
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            geom BLOB NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE incident_updates (
            id INTEGER PRIMARY KEY,
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            at TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            eta TEXT,
            author TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX incident_updates_incident ON incident_updates(incident_id)")
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            author TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            detail TEXT
        )"""
    )


@migrations()
def m003_town_shares(db: sqlite_utils.Database) -> None:
    """Create town_shares: the share of each town covered per technology and status, per pair of layers.

    Measured when a layer is stored (an import, a rollback, the build) so that no worker
    measures them; ``town_share_layers`` lists the pairs measured (a town nothing covers has
    no row in ``town_shares``). ``share`` is exact, not rounded.
    """
    db.execute(
        """CREATE TABLE town_share_layers (
            towns_layer_id INTEGER NOT NULL REFERENCES layers(id),
            coverage_layer_id INTEGER NOT NULL REFERENCES layers(id),
            measured_at TEXT NOT NULL,
            PRIMARY KEY (towns_layer_id, coverage_layer_id)
        )"""
    )
    db.execute(
        """CREATE TABLE town_shares (
            towns_layer_id INTEGER NOT NULL,
            coverage_layer_id INTEGER NOT NULL,
            slug TEXT NOT NULL,
            technology TEXT NOT NULL,
            status TEXT NOT NULL,
            share REAL NOT NULL,
            max_down_mbps REAL,
            max_up_mbps REAL,
            available_from TEXT,
            PRIMARY KEY (towns_layer_id, coverage_layer_id, slug, technology, status),
            FOREIGN KEY (towns_layer_id, coverage_layer_id)
                REFERENCES town_share_layers (towns_layer_id, coverage_layer_id)
        )"""
    )


# What a migration writes besides its schema, by the migration's name: a function of a driver
# connection (``portal.data.statements``), run by the migration on SQLite and by the in-place
# upgrade of a PostgreSQL portal (``portal.data.pgupgrade``), which derives everything else from
# the schema the migration makes. A migration that writes rows must say so here.
data_steps: dict[str, Callable] = {}


def writes_rows(step: Callable):
    """Mark a migration that also writes rows: ``step(conn)`` runs after its schema, on every engine."""
    def mark(migration):
        @functools.wraps(migration)
        def both(database: sqlite_utils.Database) -> None:
            migration(database)
            step(database.conn)

        data_steps[migration.__name__] = step
        return both

    return mark


def _new_listening_key(conn) -> None:
    from portal.listening import schema

    schema.new_listening_key(conn)


@migrations()
@writes_rows(_new_listening_key)
def m010_listening(db: sqlite_utils.Database) -> None:
    """Create subscriptions, the notification outbox, deliveries and rate counts (portal.listening.schema)."""
    from portal.listening import schema

    schema.create(db)


@migrations()
def m011_reports(db: sqlite_utils.Database) -> None:
    """Create crowd reports and the drafts they raise (portal.listening.schema)."""
    from portal.listening import schema

    schema.create_reports(db)


@migrations()
def m012_interest(db: sqlite_utils.Database) -> None:
    """Create registered interest and demand thresholds (portal.listening.schema.create_interest)."""
    from portal.listening import schema

    schema.create_interest(db)


@migrations()
def m013_staff_and_report_counts(db: sqlite_utils.Database) -> None:
    """Mark staff recipients of drafts; count reports' networks by index (portal.listening.schema)."""
    from portal.listening import schema

    schema.create_staff_recipients(db)
    schema.count_report_networks(db)


@migrations()
def m014_feedback(db: sqlite_utils.Database) -> None:
    """Create "this answer is wrong here" reports and letters (mail to one person); note what interest was told."""
    from portal.listening import feedback, letters

    feedback.create(db)
    letters.create(db)
    # The fiber state a registration was last told of ('planned', 'live'): each is told once.
    db.execute("ALTER TABLE interest ADD COLUMN told TEXT")


@migrations()
def m015_incident_languages(db: sqlite_utils.Database) -> None:
    """Add the English texts of incidents and the affected place in words (Russian and English).

    ``title``, ``cause`` and ``message`` keep the text staff give first, in the region's language
    (Russian); a text there without a Cyrillic letter is English (``portal.incidents.language``).
    The ``*_en`` columns hold the English text beside a Russian one.
    """
    db.execute("ALTER TABLE incidents ADD COLUMN title_en TEXT")
    db.execute("ALTER TABLE incidents ADD COLUMN cause_en TEXT")
    db.execute("ALTER TABLE incidents ADD COLUMN place TEXT")
    db.execute("ALTER TABLE incidents ADD COLUMN place_en TEXT")
    db.execute("ALTER TABLE incident_updates ADD COLUMN message_en TEXT")


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


def migrate(path: str | Path, before: str | None = None) -> None:
    """Create the file if needed and apply every pending migration (or those up to ``before``, one's name)."""
    db = sqlite_utils.Database(str(path))
    try:
        db.execute("PRAGMA journal_mode=WAL")
        migrations.apply(db, stop_before=before)
    finally:
        db.close()


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
