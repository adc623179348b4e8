"""Copy the live database consistently, even while the portal is serving from it."""
import sqlite3
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option, require_database

from portal.data import db


@click.command(epilog="\b\nExample:\n    python scripts/backup.py backups/portal-2025-06-30.sqlite")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@db_option
def main(dest, force, db_path):
    """Copy the database to DEST with SQLite's online backup API (one consistent snapshot)."""
    require_database(db_path)
    if dest.exists() and not force:
        raise Refused(f"{dest} already exists; give a new file name or add --force to replace it.")
    if dest.resolve() == Path(db_path).resolve():
        raise Refused(f"{dest} is the database itself; give another file name.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    source = db.connect_readonly(db_path)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # readers and writers carry on; the copy is one snapshot
            target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            ok = target.execute("PRAGMA integrity_check").fetchone()[0]
            rev = db.revision(target)
        finally:
            target.close()
    finally:
        source.close()
    if ok != "ok":
        partial.unlink(missing_ok=True)
        raise Refused(f"the copy failed SQLite's integrity check ({ok}); {dest} was not written.")
    partial.replace(dest)  # the finished copy appears at once, never half-written
    click.echo(f"Backed up {db_path} (revision {rev}) to {dest}")


if __name__ == "__main__":
    main()
