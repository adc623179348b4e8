"""A PostgreSQL database before it holds a portal: reaching it, telling whether it holds one, an empty one.

What the build (``portal.data.build``: the demo, or a rebuild copied in) and an import with
``--create`` (``portal.data.imports``) share. The build lock is an advisory lock: nodes and
scripts starting at once make a portal once. Nothing here knows Flask.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from portal.data import migrations, transfer
from portal.data.engines import Unreachable, describe, holds_portal, reach

# Any fixed number: the key of the advisory lock the demo build of a PostgreSQL portal takes.
BUILD_LOCK_KEY = 5_303_001


class BuildRefused(RuntimeError):
    """A PostgreSQL database the build cannot reach or replace; the message says why. Nothing was changed."""


def reach_or_refuse(url: str):
    """Return a connection to a PostgreSQL database, or refuse (``BuildRefused``) saying why not."""
    try:
        return reach(url)
    except Unreachable as exc:
        raise BuildRefused(str(exc)) from None


def holds_portal_at(url: str) -> bool:
    """Return whether a PostgreSQL database holds a portal (its ``meta``); refuse one it cannot reach."""
    conn = reach_or_refuse(url)
    try:
        return holds_portal(conn)
    finally:
        conn.close()


def create_empty(url: str) -> bool:
    """Give an empty PostgreSQL database an empty portal: this version's schema, no rows (False: it had one).

    What ``--create`` makes on SQLite (a migrated file), copied in by ``migrate_db``'s copy under
    the build lock. A database holding other tables is refused (``BuildRefused``).
    """
    conn = reach_or_refuse(url)
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
        if holds_portal(conn):
            return False
        others = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                             " ORDER BY 1") if r[0] not in transfer.POSTGIS_TABLES]
        if others:
            raise BuildRefused(f"{describe(url)} holds tables that are not the portal's"
                               f" ({', '.join(others[:5])}); give an empty database")
        with tempfile.TemporaryDirectory(prefix="portal-empty-") as folder:
            empty = Path(folder) / "portal.sqlite"
            migrations.migrate(empty)
            try:
                transfer.move(str(empty), url)
            except (transfer.Refusal, transfer.CopyFailed) as exc:
                raise BuildRefused(str(exc)) from None
        return True
    finally:
        conn.close()
