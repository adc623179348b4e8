"""Subscriptions for staff: how many per town and service, and forgetting an address on request.

``forget`` also deletes the address's "bring fiber here" registrations and removes it from
"this answer is wrong here" reports.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option, example, migrated_database

from portal.listening import feedback, interest, store, subscriptions

EXAMPLES = {
    "group": "python scripts/subscribers.py counts",
    "counts": "python scripts/subscribers.py counts",
    "forget": "python scripts/subscribers.py forget vera@example.org",
}


def _example(name: str) -> str:
    """Return the help epilog of a command (its example)."""
    return example(EXAMPLES, name)


@click.group(epilog=_example("group"))
def main() -> None:
    """Count subscriptions (never showing an address) and forget a person's address on request."""


@main.command("counts", epilog=_example("counts"))
@db_option
def counts_command(db_path):
    """Show confirmed and pending subscriptions per town and service (a point counts in its town)."""
    conn = store.connect(migrated_database(db_path))
    try:
        rows = subscriptions.counts(conn)
    finally:
        conn.close()
    if not rows:
        click.echo("no subscriptions")
        return
    table = [("TOWN", "PLACE", "SERVICE", "CONFIRMED", "PENDING")]
    table += [(r["town"], r["kind"], r["service"], str(r["confirmed"]), str(r["pending"])) for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    total_confirmed = sum(r["confirmed"] for r in rows)
    click.echo(f"(a subscription to several services counts once per service; {total_confirmed} confirmed"
               " subscription-services in all)")


@main.command("forget", epilog=_example("forget"))
@db_option
@click.argument("email")
def forget_command(db_path, email):
    """Delete every subscription and fiber registration of EMAIL, and EMAIL from reports (a person's request)."""
    path = migrated_database(db_path)
    try:
        with store.transaction(path) as conn:
            count = subscriptions.forget(conn, email)
            registered = interest.forget(conn, email)
            reports = feedback.forget(conn, email)
    except subscriptions.SubscriptionError as exc:
        raise Refused(f"{exc}; give the address as the person wrote it, e.g. vera@example.org") from None
    click.echo(f"deleted {count} subscription{'s' if count != 1 else ''} of that address")
    if registered or reports:
        click.echo(f"deleted {registered} fiber registration{'s' if registered != 1 else ''} and the address"
                   f" from {reports} report{'s' if reports != 1 else ''}")


if __name__ == "__main__":
    main()
