"""Move a whole portal between SQLite and PostgreSQL (docs/deploy.md)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, echo_err
from tqdm import tqdm

from portal.data import transfer
from portal.data.engines import describe


class Failed(click.ClickException):
    """The copy failed or did not match its source: printed as 'Error: ...', exit status 1."""

    exit_code = 1


@click.command(epilog="\b\nExample:\n    python scripts/migrate_db.py instance/portal.sqlite"
                      " postgresql://portal@/portal?host=/run/postgresql")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--replace", is_flag=True, help="Replace the portal's tables if TO already holds them.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows written per statement.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
def main(source, target, replace, batch, progress):
    """Copy a whole portal database from FROM to TO and check the copy.

    FROM and TO are each an SQLite file or a PostgreSQL URL (postgresql://USER@HOST/DB, or
    postgresql://USER@/DB?host=SOCKET_FOLDER for a Unix socket). Everything is copied: layers,
    incidents, the audit log, subscriptions, reports, interest and their queues. FROM is only
    read, in one snapshot, so a portal may keep serving from it (writes it takes meanwhile are
    not copied). A TO that already holds tables is refused unless --replace.

    The copy counts every table's rows and compares every geometry (as WKB) with FROM before
    anything is committed: a PostgreSQL TO gets it in one transaction, an SQLite TO is built
    beside it and renamed into place. On a difference, an error or Ctrl-C, TO is left as it
    was. The PostgreSQL schema is made from the SQLite migrations (PostGIS geometries with
    GiST indexes). The portal itself still serves from SQLite only.
    """
    shown = sys.stderr.isatty() if progress is None else progress
    bars = []

    def totals(counts):  # the source's rows, counted in its snapshot before the copy starts
        bars.append(tqdm(total=sum(counts.values()), unit="row", file=sys.stderr, disable=not shown,
                         mininterval=0.25, leave=False))

    def advance(table, rows):
        bars[0].set_description(table, refresh=False)
        bars[0].update(rows)

    try:
        try:
            counts = transfer.move(source, target, replace=replace, batch=batch, progress=advance,
                                   totals=totals)
        finally:
            for bar in bars:
                bar.close()
    except transfer.Refusal as exc:
        raise Refused(f"{exc}.") from None
    except transfer.CopyFailed as exc:
        if exc.counts:
            echo_err(_table(exc.counts))
        raise Failed(f"{exc}; {describe(target)} was left as it was.") from None
    except KeyboardInterrupt:
        echo_err(f"Interrupted; {describe(target)} was left as it was.")
        sys.exit(130)
    click.echo(_table(counts))
    click.echo(f"Copied {sum(c.source for c in counts)} rows in {len(counts)} tables from {describe(source)}"
               f" to {describe(target)}; every count matches.")


def _table(counts) -> str:
    """Return the per-table counts as aligned text."""
    width = max(len(c.table) for c in counts)
    lines = [f"{'table':<{width}}  {'FROM':>8}  {'TO':>8}  geometries"]
    for c in counts:
        geometry = {None: "", True: "equal", False: "DIFFERENT"}[c.geometry]
        mark = "" if c.ok else "  <-- differs"
        lines.append(f"{c.table:<{width}}  {c.source:>8}  {c.target:>8}  {geometry}{mark}".rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    main()
