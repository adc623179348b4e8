"""Rebuild the database from geodata/ (the shipped demo region)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option

from portal.config import GEODATA_DIR
from portal.data import build, pgportal
from portal.data.engines import describe


@click.command()
@db_option(must_exist=False)
@click.option("--geodata", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=str(GEODATA_DIR), show_default="geodata/", help="Folder with the shipped data.")
def main(db_path: Path, geodata: Path) -> None:
    """Rebuild the database from geodata/, replacing the data in the file at --db (or creating it).

    The one script that makes a new database where --db names none. --db may be a postgresql://
    URL: an empty database, or one holding a portal, which is replaced.

    The new database is built beside the old one and then copied in as one commit,
    so a running portal serves the old data until the new data is complete, and every
    worker serves the new data from its next request.

    Example:

        python scripts/build_db.py --db instance/portal.sqlite
    """
    try:
        build.build_database(db_path, geodata)
    except pgportal.BuildRefused as exc:
        raise Refused(f"--db {describe(str(db_path))}: {exc}.") from None
    click.echo(f"built {describe(str(db_path))}")


if __name__ == "__main__":
    main()
