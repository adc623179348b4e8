"""The command behind both import scripts: read a GIS file, report, replace the live layer."""
from __future__ import annotations

from datetime import datetime

import click
from cli import Refused, author_default, db_option, echo_err, require_database

from portal.data import imports
from portal.data.import_report import format_diff, format_report


def import_command(kind: str):
    """Return the click command behind scripts/import_{kind}.py."""
    example = {"coverage": "python scripts/import_coverage.py coverage.zip --mapping"
                           " geodata/mapping.example.json --dry-run",
               "towns": "python scripts/import_towns.py localities.gpkg --mapping"
                        " geodata/mapping.example.towns.json --dry-run"}[kind]

    @click.command(help=(
        f"Replace the live {kind} layer with FILE (GeoJSON, GeoPackage, Shapefile or a .zip of one,"
        " KML, ... in any CRS). A report is printed before anything is written; a file with"
        " unusable features is refused whole unless --skip-invalid; a file that would remove more than"
        f" {imports.MAX_REMOVED_SHARE:.0%} of the live layer's features stops, shows the difference and"
        " needs --replace-all. See docs/importing.md."
    ), epilog=f"\b\nExample:\n    {example}")
    @click.argument("file", type=str)
    @click.option("--mapping", "mapping", type=click.Path(dir_okay=False),
                  help="JSON file mapping the file's columns and values to ours.")
    @click.option("--dry-run", is_flag=True,
                  help="Print the report and the difference from the live layer; write nothing.")
    @click.option("--skip-invalid", is_flag=True,
                  help="Import the usable features and leave out the refused ones.")
    @click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login",
                  help="Who is importing (kept in the layer history).")
    @click.option("--as-of", "as_of", default=None,
                  help="Date the data describes (ISO 8601); default: now.")
    @click.option("--progress/--no-progress", default=None,
                  help="Progress bars on stderr (default: only when stderr is a terminal).")
    @click.option("--replace-all", is_flag=True,
                  help=f"Allow the file to remove more than {imports.MAX_REMOVED_SHARE:.0%} of the live"
                       " layer's features: it really is the whole new layer.")
    @click.option("--create", is_flag=True,
                  help="Make a new, empty portal database at --db when there is none, or in an empty"
                       " PostgreSQL database (otherwise a missing --db is refused).")
    @db_option(must_exist=False)
    def command(file, mapping, dry_run, skip_invalid, author, as_of, progress, replace_all, create, db_path):
        if as_of is not None:
            try:
                datetime.fromisoformat(as_of.replace("Z", "+00:00"))
            except ValueError:
                raise Refused(f"--as-of {as_of!r} is not an ISO 8601 date (e.g. 2025-06-30).")
        url = isinstance(db_path, str)
        if not (create and (url or not db_path.exists())):
            require_database(db_path)  # with --create, a URL is checked by the import (an empty database)
        try:
            result = imports.import_layer(
                db_path, kind, file, mapping=mapping, dry_run=dry_run, skip_invalid=skip_invalid,
                author=author, progress=progress, as_of=as_of, create=create, replace_all=replace_all)
        except imports.FileRefused as exc:
            _print(exc.result, kind)
            raise Refused(str(exc)) from None
        except imports.ImportFailure as exc:
            raise Refused(str(exc)) from None
        except KeyboardInterrupt:
            echo_err(f"Interrupted: nothing was imported; the live {kind} layer is unchanged.")
            raise SystemExit(130) from None
        _print(result, kind)
        if dry_run:
            click.echo("Dry run: nothing was written.")
        else:
            was = f"replaces layer {result.replaced_id}" if result.replaced_id else "the first"
            c = result.counts
            click.echo(f"Imported {result.report['features_accepted']} {kind} features from"
                       f" {result.report['file']} as layer {result.layer_id} ({was}: {c['kept']} kept,"
                       f" {c['added']} added, {c['removed']} removed); it is live now.")
            _nudge(db_path)

    def _nudge(db_path):
        """Ask the notification worker to mail whom new coverage reached (recorded with the import)."""
        from portal import config
        from portal.listening import queue
        from portal.listening.settings import Settings

        queue.nudge(Settings.from_config(config.settings({"DATABASE": str(db_path)})))

    def _print(result, kind):
        click.echo(format_report(result.report))
        if result.diff is not None:
            click.echo(format_diff(result.diff, kind))

    return command
