"""Write the whole public site into a folder any static host serves (the fallback status page)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import db_option

from portal import create_app
from portal.web import static_export


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option("--base-url", default="/", show_default=True,
              help="Where the folder will be served: a path (/status/) or a full URL.")
@click.option("--lang", type=click.Choice(["ru", "en"]), default=None,
              help="Language of the saved pages (default: the portal's default language).")
def main(folder: Path, db_path: Path, base_url: str, lang: str | None) -> None:
    """Render every town and incident page, the overview, feeds, parameter-free JSON and assets.

    Pages link to each other as folders (towns/pechory/), JSON answers are saved with
    a .json suffix (api/v1/towns/pechory.json); a point check or search leads to a page
    that says the live site is down and lists the towns.

    Example:

        python scripts/export_static.py /srv/portal/static-export --db instance/portal.sqlite
    """
    app = create_app({"DATABASE": str(db_path)})
    result = static_export.export_site(app, folder, base_url=base_url, lang=lang)
    for path, status in result["failed"]:
        click.echo(f"skipped {path}: status {status}", err=True)
    click.echo(f"wrote {result['pages']} pages and answers and {result['assets']} assets to {folder}")
    if result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
