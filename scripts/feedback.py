""""This answer is wrong here" reports for staff: list them, answer one (by e-mail), close one."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, author_default, db_option, example, migrated_database

from portal import config
from portal.data import db
from portal.data.text import BadText, check_text
from portal.listening import feedback, queue, store
from portal.listening.settings import Settings

EXAMPLES = {
    "group": "python scripts/feedback.py list",
    "list": "python scripts/feedback.py list --all",
    "answer": 'python scripts/feedback.py answer 12 --message "The map was out of date; fiber reaches your street."',
    "close": "python scripts/feedback.py close 12",
}


def _example(name: str) -> str:
    """Return the help epilog of a command (its example)."""
    return example(EXAMPLES, name)


@click.group(epilog=_example("group"))
def main() -> None:
    """Reports that an answer of the portal is wrong somewhere: list, answer (mailed to the reporter), close."""


@main.command("list", epilog=_example("list"))
@click.option("--all", "everything", is_flag=True, help="Closed reports too.")
@db_option
def list_command(everything, db_path):
    """List open reports, newest first: id, when, place, technology, state, what the reporter wrote."""
    conn = store.connect(migrated_database(db_path))
    try:
        rows = feedback.staff_list(conn, everything)
    finally:
        conn.close()
    if not rows:
        click.echo("no open reports" if not everything else "no reports")
        return
    for r in rows:
        place = r["town"] or "-"
        if r["cell"]:
            place += f" (point {r['lat']:.4f}, {r['lon']:.4f} ±100 m)"
        state = "closed" if r["closed_at"] else "answered" if r["answered_at"] else "open"
        mail = "e-mail confirmed" if r["email"] and r["confirmed_at"] else "e-mail unconfirmed" if r["email"] \
            else "no e-mail"
        click.echo(f"#{r['id']}  {r['created_at']}  {place}  {r['technology']}  {state}  ({mail})")
        click.echo(f"    {r['message']}")
        if r["answer"]:
            click.echo(f"    answer ({r['answered_by']}, {r['answered_at']}): {r['answer']}")


@main.command("answer", epilog=_example("answer"))
@click.argument("report_id", type=int)
@click.option("--message", required=True, help="The answer, sent to the reporter's confirmed e-mail address.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login",
              help="Who answers (kept with the report).")
@db_option
def answer_command(report_id, message, author, db_path):
    """Answer report REPORT_ID; the reporter gets it by e-mail if they left a confirmed address."""
    path = migrated_database(db_path)
    try:
        message = check_text("--message", message, multiline=True)
        author = check_text("--author", author)
    except BadText as exc:
        raise Refused(str(exc)) from None
    if not message or len(message) > feedback.MAX_ANSWER:
        raise Refused(f"--message must hold 1 to {feedback.MAX_ANSWER} characters; say what was checked"
                      " and what changes")
    try:
        with store.transaction(path) as conn:
            mailed = feedback.answer(conn, report_id, message, author or "staff", db.utcnow())
    except feedback.FeedbackError as exc:
        raise Refused(str(exc)) from None
    if mailed:
        queue.nudge(Settings.from_config(config.settings({"DATABASE": str(path)})))
    click.echo(f"answered report {report_id}" + ("; the answer will be e-mailed to the reporter" if mailed
                                                  else "; the reporter left no confirmed e-mail"))


@main.command("close", epilog=_example("close"))
@click.argument("report_id", type=int)
@db_option
def close_command(report_id, db_path):
    """Close report REPORT_ID: it no longer counts as open on the town page."""
    path = migrated_database(db_path)
    try:
        with store.transaction(path) as conn:
            feedback.close(conn, report_id, db.utcnow())
    except feedback.FeedbackError as exc:
        raise Refused(str(exc)) from None
    click.echo(f"closed report {report_id}")


if __name__ == "__main__":
    main()
