"""Show the audit trail: who changed what and when (incidents, imports, rollbacks)."""
from __future__ import annotations

import json
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option

from portal.config import DEFAULTS
from portal.data import audit, db

TIMES_HELP = ("ISO 8601 (e.g. 2026-11-22 or 2026-11-22T19:40); a time without a zone is the region's"
              " local time.")


def _time(option: str, text: str | None, zone: ZoneInfo) -> str | None:
    """Return an option's time as the stored form (ISO UTC with Z), or refuse it naming the value."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{option} {text!r} is not an ISO 8601 date or time; write e.g. 2026-11-22 or"
                      " 2026-11-22T19:40") from None
    return db.iso(value.replace(tzinfo=zone) if value.tzinfo is None else value)


def _detail(text: str | None) -> str:
    """Return the stored detail as one short line (before -> after for corrections)."""
    try:
        detail = json.loads(text or "null")
    except ValueError:
        return text or ""
    if not isinstance(detail, dict):
        return "" if detail is None else str(detail)
    parts = []
    for key, value in detail.items():
        if value is None or value == [] or key == "area":
            continue
        if isinstance(value, dict) and "before" in value:
            where = f" (update {value['update']})" if "update" in value else ""
            parts.append(f"{key}{where}: {value['before']!r} -> {value['after']!r}")
        else:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={shown}")
    return "; ".join(parts)


@click.command(epilog="\b\nExample:\n    python scripts/audit.py --incident 12")
@db_option
@click.option("--incident", "incident_id", type=int, help="Only changes to this incident.")
@click.option("--author", help="Only changes by this member of staff.")
@click.option("--since", help="Only changes at or after this time. " + TIMES_HELP)
@click.option("--until", help="Only changes before this time. " + TIMES_HELP)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many changes, the latest ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def main(db_path, incident_id, author, since, until, limit, as_json):
    """List the audit trail, oldest first: time (local), author, action, subject and what changed."""
    with closing(db.connect_readonly(db_path)) as conn:
        zone = ZoneInfo(db.get_meta(conn).get("timezone") or DEFAULTS["TIMEZONE"])
        rows = audit.entries(conn, subject=f"incident:{incident_id}" if incident_id is not None else None,
                             author=author, since=_time("--since", since, zone), until=_time("--until", until, zone),
                             limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps({"at": r["at"], "author": r["author"], "action": r["action"],
                                   "subject": r["subject"], "detail": json.loads(r["detail"] or "null")},
                                  ensure_ascii=False))
        return
    if not rows:
        filtered = incident_id is not None or author is not None or since or until
        click.echo("no changes recorded" + (" for these filters" if filtered else ""))
        return
    for r in rows:
        at = db.parse_iso(r["at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        subject = r["subject"] or "-"
        click.echo(f"{at}  {r['author']:<12}  {r['action']:<20}  {subject:<12}  {_detail(r['detail'])}")


if __name__ == "__main__":
    main()
