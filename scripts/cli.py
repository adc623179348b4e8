"""What every staff script shares: the --db option and how refusals are printed."""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import click

from portal.config import default_database_path

# Scripts are run as ``python scripts/NAME.py``; they import the package from the checkout.
ROOT = Path(__file__).resolve().parent.parent


class Target(click.ParamType):
    """An SQLite file (a ``Path``) or a ``postgresql://`` URL (kept as text: a path would fold its ``//``)."""

    name = "PATH|URL"

    def convert(self, value, param, ctx):
        if isinstance(value, Path) or "://" not in str(value):
            return Path(value)
        return str(value)


def db_option(func=None, *, must_exist: bool = True):
    """Add ``--db PATH`` (default: ``$PORTAL_DB`` or the app's instance database).

    With ``must_exist`` (every script but build_db.py and an import run with ``--create``) the
    path must name an existing portal database: a typo is refused before anything runs,
    instead of a new database being made and written to where nobody looks.
    """
    def decorate(f):
        return click.option(
            "--db",
            "db_path",
            type=Target(),
            default=lambda: str(default_database_path()),
            show_default="$PORTAL_DB or instance/portal.sqlite",
            callback=_existing_database if must_exist else None,
            help="The portal's SQLite database, or a postgresql:// URL" + (" (must exist)." if must_exist else "."),
        )(f)

    return decorate(func) if func is not None else decorate


def _existing_database(ctx, param, value):
    """Check --db as it is parsed (click callback); ``--help`` never gets here."""
    return require_database(value)


def author_default() -> str:
    """Return who is making a change: ``$PORTAL_AUTHOR``, else the login name."""
    return os.environ.get("PORTAL_AUTHOR") or os.environ.get("USER") or "staff"


class Refused(click.ClickException):
    """A user error: printed as 'Error: ...' on stderr, exit status 2, no traceback."""

    exit_code = 2


def require_database(db_path) -> Path:
    """Return the path of an existing portal database, or refuse naming the path and what would be right.

    The file is opened read-only through SQLite (never written, not even its journal). A
    ``postgresql://`` URL is returned as it is once it names a portal (``require_postgres``).
    """
    if "://" in str(db_path):
        return require_postgres(str(db_path))
    path = Path(db_path)
    hint = ("give the portal's database with --db or $PORTAL_DB (make a new one with"
            " python scripts/build_db.py --db PATH)")
    if not path.exists():
        raise Refused(f"--db {db_path}: no such file; {hint}.")
    if path.is_dir():
        raise Refused(f"--db {db_path} is a folder; {hint}.")
    if not is_portal_database(path):
        raise Refused(f"--db {db_path} is not a portal database (no meta table with a revision); {hint}.")
    return path


def require_postgres(url: str) -> str:
    """Return a PostgreSQL URL that names a portal, or refuse saying what is wrong (one line)."""
    from portal.data.engines import Unreachable, describe, holds_portal, reach

    try:
        conn = reach(url)
    except Unreachable as exc:
        raise Refused(f"--db {describe(url)}: {exc}.") from None
    try:
        found = holds_portal(conn) and \
            conn.execute("SELECT 1 FROM meta WHERE key = 'revision'").fetchone() is not None
    finally:
        conn.close()
    if not found:
        raise Refused(f"--db {describe(url)} is not a portal database (no meta table with a revision); copy"
                      " one there with python scripts/migrate_db.py FROM TO.")
    return url


def is_portal_database(path: Path) -> bool:
    """Return whether the file is an SQLite database with the portal's ``meta`` revision."""
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return row is not None
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def example(examples: dict, name: str) -> str:
    """Return a help epilog that ends the --help text with a command staff can copy."""
    return f"Example:\n\n\b\n  {examples[name]}"


def migrated_database(db_path) -> Path:
    """Return the existing portal database, with any migration it lacks applied."""
    from portal.data import build, pgupgrade

    path = require_database(db_path)
    try:
        build.ensure_database(path)
    except pgupgrade.OtherVersion as exc:
        raise Refused(f"--db {db_path}: {exc}.") from None
    return path


def echo_err(message: str) -> None:
    """Print a line on stderr."""
    click.echo(message, err=True)


__all__ = ["db_option", "author_default", "Refused", "require_database", "migrated_database", "example",
           "echo_err", "ROOT", "sys"]
