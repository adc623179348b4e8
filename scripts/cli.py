"""What every staff script shares: the --db option and how refusals are printed."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from portal.config import default_database_path

# Scripts are run as ``python scripts/NAME.py``; they import the package from the checkout.
ROOT = Path(__file__).resolve().parent.parent


def db_option(func):
    """Add ``--db PATH`` (default: ``$PORTAL_DB`` or the app's instance database)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: str(default_database_path()),
        show_default="$PORTAL_DB or instance/portal.sqlite",
        help="SQLite database to work on.",
    )(func)


def author_default() -> str:
    """Return who is making a change: ``$PORTAL_AUTHOR``, else the login name."""
    return os.environ.get("PORTAL_AUTHOR") or os.environ.get("USER") or "staff"


class Refused(click.ClickException):
    """A user error: printed as 'Error: ...' on stderr, exit status 2, no traceback."""

    exit_code = 2


def require_database(db_path) -> Path:
    """Return the path of an existing database, or refuse naming the missing file."""
    if not Path(db_path).exists():
        raise Refused(f"database {db_path} does not exist; give an existing file with --db.")
    return Path(db_path)


def echo_err(message: str) -> None:
    """Print a line on stderr."""
    click.echo(message, err=True)


__all__ = ["db_option", "author_default", "Refused", "require_database", "echo_err", "ROOT", "sys"]
