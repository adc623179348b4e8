"""Deliver notifications to subscribers: run the worker, or see the queue."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option, example

from portal import config
from portal.listening import deliveries, queue, store, worker
from portal.listening.settings import Settings

EXAMPLES = {
    "group": "python scripts/notify.py run",
    "run": "python scripts/notify.py run --once",
    "status": "python scripts/notify.py status",
}


def _example(name: str) -> str:
    """Return the help epilog of a command (its example)."""
    return example(EXAMPLES, name)


def _settings(db_path: Path) -> Settings:
    """Return the listening settings for this database (the rest from PORTAL_* variables).

    A missing database is built first, as the app does (``make serve`` starts both at once; the
    build lock keeps them from building it twice); an older one gets the migrations it lacks.
    """
    from portal.data import build

    build.ensure_database(db_path)
    try:
        return Settings.from_config(config.settings({"DATABASE": str(db_path)}))
    except ValueError as exc:
        raise Refused(str(exc)) from None


@click.group(epilog=_example("group"))
def main() -> None:
    """Deliver e-mails and webhooks to subscribers (confirmations, incidents, maintenance).

    Mail goes to PORTAL_SMTP_URL (smtp://host:port), else into a Maildir beside the database.
    The queue is a SQLite file beside the database, or Redis with PORTAL_REDIS_URL.
    """


@main.command("run", epilog=_example("run"))
@db_option
@click.option("--once", is_flag=True, help="Deliver everything due now, then exit (0).")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Threads delivering at once.")
def run_command(db_path, once, workers):
    """Run the notification worker until stopped (Ctrl-C), or with --once deliver what is due and exit.

    A delivery that failed (the mail server down) is due again after PORTAL_NOTIFY_RETRY_SECONDS
    (60 s at first, doubling); a message is never sent twice on purpose: each delivery is
    marked sent the moment the server accepts it.
    """
    settings = _settings(db_path)
    if settings.smtp_url:
        from portal.listening.smtp import SmtpMailer

        try:
            SmtpMailer(settings.smtp_url, settings.mail_from)
        except ValueError as exc:
            raise Refused(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if once:
        found = worker.run_once(settings)
        where = settings.smtp_url or f"Maildir {settings.maildir}"
        click.echo(f"sent {found['sent']}, to retry {found['retry']}, failed {found['failed']}"
                   f" (fanned out {found['fanned_out']}; {where})")
        return
    click.echo(f"notification worker on {settings.database} (queue: "
               f"{'Redis' if settings.redis_url else settings.queue_file}; mail: "
               f"{settings.smtp_url or settings.maildir})", err=True)
    queue.run(settings, workers=workers)


@main.command("status", epilog=_example("status"))
@db_option
def status_command(db_path):
    """Show the queue: deliveries by state, what is due, retries waiting, events, subscriptions."""
    settings = _settings(db_path)
    conn = store.connect(settings.database)
    try:
        found = deliveries.status(conn, time.time())
    finally:
        conn.close()
    d = found["deliveries"]
    click.echo(f"deliveries: {d['pending']} pending, {d['sending']} sending, {d['sent']} sent, {d['failed']} failed")
    oldest = f" (oldest waiting {found['oldest_due_s']} s)" if found["oldest_due_s"] is not None else ""
    click.echo(f"due now: {found['due_now']}{oldest}")
    nxt = f" (next in {max(found['next_retry_in_s'], 0)} s)" if found["next_retry_in_s"] is not None else ""
    click.echo(f"waiting to retry: {found['retry_later']}{nxt}")
    if found["last_error"]:
        click.echo(f"last error: {found['last_error']}")
    e = found["events"]
    click.echo(f"events: {e['pending']} waiting to fan out, {e['done']} fanned out, {e['folded']} folded")
    s = found["subscriptions"]
    click.echo(f"subscriptions: {s['confirmed']} confirmed, {s['pending']} waiting for confirmation")
    click.echo(f"queue: {'Redis ' + settings.redis_url if settings.redis_url else settings.queue_file}")


if __name__ == "__main__":
    main()
