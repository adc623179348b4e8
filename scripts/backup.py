"""Copy the live database consistently, even while the portal is serving from it."""
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option, require_database

from portal.data import restore
from portal.data.engines import describe, is_postgres


@click.command(epilog="\b\nExample:\n    python scripts/backup.py backups/portal-2025-06-30.sqlite\n"
                      "    python scripts/backup.py backups/portal-2025-06-30.sqlite"
                      " --db postgresql://portal@/portal")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@db_option
def main(dest, force, db_path):
    """Copy the database to DEST, one consistent snapshot, while the portal serves and staff write.

    An SQLite portal is copied with SQLite's online backup API; a PostgreSQL one (--db a
    postgresql:// URL) by migrate_db's checked copy, read in one snapshot. Either way DEST is an
    SQLite file holding the whole portal, which scripts/restore.py puts back onto either engine.
    """
    require_database(db_path)
    if dest.exists() and not force:
        raise Refused(f"{dest} already exists; give a new file name or add --force to replace it.")
    if not is_postgres(str(db_path)) and dest.resolve() == Path(db_path).resolve():
        raise Refused(f"{dest} is the database itself; give another file name.")
    try:
        revision = restore.take_backup(db_path, dest)
    except restore.BackupFailed as exc:
        raise Refused(f"{exc}; {dest} was not written.") from None
    click.echo(f"Backed up {describe(str(db_path))} (revision {revision}) to {dest}")


if __name__ == "__main__":
    main()
