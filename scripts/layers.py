"""List the imported layers, show one, or roll back to a previous one."""
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, author_default, db_option, require_database

from portal.data import audit, db, layers
from portal.data.text import BadText, check_text


def _open(db_path: Path):
    """Open the database read-only, refusing a path that does not exist."""
    return db.connect_readonly(require_database(db_path))


def _layer(conn, layer_id: int) -> dict:
    """Return one layer's record or refuse naming the ids that exist."""
    info = layers.layer_info(conn, layer_id)
    if info is None:
        ids = [r["id"] for r in layers.all_layers(conn)]
        raise Refused(f"there is no layer {layer_id}; the layers are"
                      f" {', '.join(map(str, ids)) or 'none (nothing imported yet)'}.")
    return info


@click.group(epilog="\b\nExample:\n    python scripts/layers.py list --db instance/portal.sqlite")
def main():
    """Every import is kept as a layer: list them, show one, make a previous one live again."""


@main.command("list", epilog="\b\nExample:\n    python scripts/layers.py list --kind coverage")
@click.option("--kind", type=click.Choice(layers.KINDS), help="Only this kind of layer.")
@db_option
def list_layers(kind, db_path):
    """List every import: id, kind, when, who, file, checksum, counts, what it replaced, live."""
    conn = _open(db_path)
    try:
        live = layers.live_layer_ids(conn)
        rows = layers.all_layers(conn, kind)
    finally:
        conn.close()
    click.echo(f"{'id':>4}  {'kind':8}  {'created (UTC)':20}  {'author':12}  {'features':>8}"
               f"  {'replaced':>8}  {'sha256':12}  file")
    for r in rows:
        mark = "  LIVE" if live.get(r["kind"]) == r["id"] else ""
        click.echo(f"{r['id']:>4}  {r['kind']:8}  {r['created_at']:20}  {r['author'][:12]:12}"
                   f"  {r['feature_count']:>8}  {r['replaced_id'] or '-':>8}"
                   f"  {(r['checksum'] or '-')[:12]:12}  {r['source']}{mark}")


@main.command("show", epilog="\b\nExample:\n    python scripts/layers.py show 3")
@click.argument("layer_id", type=int)
@db_option
def show(layer_id, db_path):
    """Show one layer's record, its import report and its rollbacks."""
    conn = _open(db_path)
    try:
        info = _layer(conn, layer_id)
        live = layers.live_layer_ids(conn)[info["kind"]] == layer_id
        trail = audit.entries(conn, subject=f"layer {layer_id}", limit=1000)
    finally:
        conn.close()
    report = json.loads(info.pop("report") or "null")
    for key, value in info.items():
        click.echo(f"{key}: {value}")
    click.echo(f"live: {'yes' if live else 'no'}")
    for row in trail:
        click.echo(f"history: {row['at']} {row['action']} by {row['author']}")
    if report is not None:
        click.echo("report: " + json.dumps(report, ensure_ascii=False, indent=2))


@main.command("rollback", epilog="\b\nExample:\n    python scripts/layers.py rollback 2")
@click.argument("layer_id", type=int)
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login",
              help="Who is rolling back (kept in the audit log).")
@db_option
def rollback(layer_id, author, db_path):
    """Make a previous layer live again (the portal serves it on its next request)."""
    try:
        author = check_text("author", author)
    except BadText as exc:
        raise Refused(str(exc)) from None
    if not author:
        raise Refused("empty author; give who is rolling back (--author or $PORTAL_AUTHOR)")
    conn = _open(db_path)
    try:
        info = _layer(conn, layer_id)
    finally:
        conn.close()
    with db.writing(db_path) as conn:
        was = layers.live_layer_ids(conn)[info["kind"]]
        if was == layer_id:
            raise Refused(f"layer {layer_id} is already the live {info['kind']} layer;"
                          " name an earlier layer (see: python scripts/layers.py list).")
        layers.activate_layer(conn, layer_id)
        audit.record(conn, author=author, action="layer.rollback", subject=f"layer {layer_id}",
                     detail={"kind": info["kind"], "previous_live": was})
    click.echo(f"Layer {layer_id} ({info['kind']}, {info['source']}) is live again;"
               f" layer {was} is no longer live.")
    _nudge(db_path)


def _nudge(db_path) -> None:
    """Ask the notification worker to mail whom the layer's coverage reached (recorded with the switch)."""
    from portal import config
    from portal.listening import queue
    from portal.listening.settings import Settings

    queue.nudge(Settings.from_config(config.settings({"DATABASE": str(db_path)})))


if __name__ == "__main__":
    main()
