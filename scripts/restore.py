"""Restore a backup into the live database, safely while the portal is serving (docs/deploy.md)."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, author_default, db_option, require_database

from portal.data import restore as restoring
from portal.data.engines import describe


@click.command(epilog="\b\nExample:\n    python scripts/restore.py backups/portal-2026-11-22.sqlite"
                      " --db instance/portal.sqlite\n"
                      "    python scripts/restore.py backups/portal-2026-11-22.sqlite"
                      " --db postgresql://portal@/portal")
@click.argument("backup", type=click.Path(dir_okay=False, path_type=Path))
@db_option(must_exist=False)
@click.option("--keep-current", "keep", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save the live data before it is replaced (default: beside the database,"
                   " named .before-restore-<time>; for a PostgreSQL portal, beside BACKUP, named"
                   " before-restore-<time>.sqlite).")
@click.option("--no-keep", is_flag=True, help="Do not save the live data first.")
@click.option("--create", is_flag=True, help="Restore into a new file when --db names none, or into an empty"
              " PostgreSQL database (a new machine).")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def main(backup, db_path, keep, no_keep, create, author):
    """Copy BACKUP (made by scripts/backup.py) into the live database as one commit.

    The portal keeps serving: every worker shows the restored data from its next request.
    The backup is checked first (integrity, a portal database) and only read; the live data
    is saved beside the database first unless --no-keep. Never copy a backup file over the
    live database instead: running workers would read it against the old write-ahead log.
    A PostgreSQL portal (--db a postgresql:// URL) gets the backup in one transaction.
    """
    url = isinstance(db_path, str)
    exists = _holds_portal(db_path)
    if not exists and not (create and (url or not db_path.exists())):
        require_database(db_path)  # refuses, saying what is wrong
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if no_keep or not exists:
        keep = None
    elif keep is None and url:  # no folder of its own
        keep = backup.with_name(f"before-restore-{stamp}.sqlite")
    elif keep is None:
        keep = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    try:
        done = restoring.restore(backup, db_path, author=author, keep=keep, create=create)
    except restoring.RestoreRefused as exc:
        raise Refused(str(exc)) from None
    if done["kept"]:
        click.echo(f"Saved the live data to {done['kept']}")
    click.echo(f"Restored {backup} (revision {done['backup_revision']}) into {describe(str(db_path))};"
               f" the portal serves it from its next request (revision {done['revision']}).")


def _holds_portal(db_path) -> bool:
    """Return whether --db names a portal database (a file, or a PostgreSQL database holding one)."""
    try:
        require_database(db_path)
    except Refused:
        return False
    return True


if __name__ == "__main__":
    main()
