"""The portal's schema as a history of migrations: the one source of both engines' schema.

Each migration is a function of a sqlite-utils ``Database`` (sqlite-utils' migrations record
which ran, in ``_sqlite_migrations``). ``migrate`` applies them to an SQLite file; a PostgreSQL
portal gets the same schema derived from them (``portal.data.portable``) and an older one the
migrations it lacks (``portal.data.pgupgrade``). A migration that also writes rows says so with
``writes_rows``: its step is written once, for every engine.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("portal")


@MIGRATIONS()
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


@MIGRATIONS()
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


@MIGRATIONS()
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


@MIGRATIONS()
@writes_rows(_new_listening_key)
def m010_listening(db: sqlite_utils.Database) -> None:
    """Create subscriptions, the notification outbox, deliveries and rate counts (portal.listening.schema)."""
    from portal.listening import schema

    schema.create(db)


@MIGRATIONS()
def m011_reports(db: sqlite_utils.Database) -> None:
    """Create crowd reports and the drafts they raise (portal.listening.schema)."""
    from portal.listening import schema

    schema.create_reports(db)


@MIGRATIONS()
def m012_interest(db: sqlite_utils.Database) -> None:
    """Create registered interest and demand thresholds (portal.listening.schema.create_interest)."""
    from portal.listening import schema

    schema.create_interest(db)


@MIGRATIONS()
def m013_staff_and_report_counts(db: sqlite_utils.Database) -> None:
    """Mark staff recipients of drafts; count reports' networks by index (portal.listening.schema)."""
    from portal.listening import schema

    schema.create_staff_recipients(db)
    schema.count_report_networks(db)


@MIGRATIONS()
def m014_feedback(db: sqlite_utils.Database) -> None:
    """Create "this answer is wrong here" reports and letters (to one person); note what interest was told."""
    from portal.listening import feedback, letters

    feedback.create(db)
    letters.create(db)
    # The fiber state a registration was last told of ('planned', 'live'): each is told once.
    db.execute("ALTER TABLE interest ADD COLUMN told TEXT")


@MIGRATIONS()
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


def migrate(path: str | Path, before: str | None = None) -> None:
    """Create the file if needed and apply every pending migration (or those up to ``before``, one's name)."""
    db = sqlite_utils.Database(str(path))
    try:
        db.execute("PRAGMA journal_mode=WAL")
        MIGRATIONS.apply(db, stop_before=before)
    finally:
        db.close()
