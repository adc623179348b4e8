""""This answer is wrong here": reports from the public about a verdict, staff answers, public aggregates.

A report names a place (a town, or a point kept only as its ~100 m cell), a technology and
what is wrong (control characters stripped, at most ``MAX_MESSAGE`` characters kept), and an
optional e-mail address confirmed by a link (double opt-in) before staff's answer is sent to
it. Staff list, answer and close reports (``scripts/feedback.py``). The public sees per town
only numbers: reports open, the median time to an answer, and the promised response time
(setting ``FEEDBACK_RESPONSE_DAYS``); never what anyone wrote.

Nothing here knows about Flask; every write takes a connection inside the caller's
transaction (``store.transaction``).
"""
from __future__ import annotations

import re
import secrets
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql
from portal.data.layers import TECHNOLOGIES
from portal.listening import letters
from portal.listening.subscriptions import PENDING_DAYS, SubscriptionError, normalise_email, parse_household

MAX_MESSAGE = 1000
MAX_ANSWER = 5000
# Every control character but the line feed (which becomes a space) goes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class FeedbackError(LookupError):
    """A staff action on a report that does not exist or cannot take it."""


def create(db_) -> None:
    """Create the ``feedback`` table (``m014_feedback``)."""
    db_.execute(
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            town TEXT,
            cell TEXT,
            lat REAL,
            lon REAL,
            technology TEXT NOT NULL,
            message TEXT NOT NULL,
            email TEXT,
            lang TEXT NOT NULL CHECK (lang IN ('ru', 'en')),
            token TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            confirmed_at TEXT,
            answer TEXT,
            answered_at TEXT,
            answered_by TEXT,
            closed_at TEXT,
            CHECK (town IS NOT NULL OR cell IS NOT NULL)
        )"""
    )
    db_.execute("CREATE INDEX feedback_town ON feedback(town)")
    db_.execute("CREATE INDEX feedback_email ON feedback(email) WHERE email IS NOT NULL")


@dataclass(frozen=True)
class Feedback:
    """A validated report."""

    town: str | None
    cell: str | None
    lat: float | None
    lon: float | None
    technology: str
    message: str
    email: str | None
    lang: str


def clean_message(raw, limit: int = MAX_MESSAGE) -> str:
    """Return the text with control characters stripped (line breaks as spaces), at most ``limit`` characters."""
    text = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", str(raw))
    return re.sub(r" {2,}", " ", text).strip()[:limit].strip()


def parse(data: Mapping, conn, *, default_lang: str = "ru") -> Feedback:
    """Validate ``town`` or ``lat``/``lon``, ``technology``, ``message``, optional ``email`` and ``lang``.

    Raise SubscriptionError naming the field.
    """
    town, cell, lat, lon, email, lang = parse_household(data, conn, default_lang=default_lang)
    technology = data.get("technology")
    if technology not in TECHNOLOGIES:
        raise SubscriptionError("technology", f"unknown technology {str(technology)[:30]!r}; expected one of "
                                              f"{', '.join(TECHNOLOGIES)}")
    raw = data.get("message")
    message = clean_message(raw) if isinstance(raw, str) else ""
    if not message:
        raise SubscriptionError("message", f"missing message: say in a few words (at most {MAX_MESSAGE} "
                                           "characters) what is wrong with the answer here")
    return Feedback(town=town, cell=cell, lat=lat, lon=lon, technology=technology, message=message,
                    email=email, lang=lang)


def submit(conn, item: Feedback, now: datetime) -> int:
    """Store a report (and, with an e-mail, the confirmation letter's event); return its id."""
    report_id = sql.scalar(conn, _statements().insert, town=item.town, cell=item.cell, lat=item.lat,
                           lon=item.lon, technology=item.technology, message=item.message, email=item.email,
                           lang=item.lang, token=secrets.token_urlsafe(24), created_at=db.iso(now))
    if item.email:
        letters.record(conn, "feedback_confirm", {"feedback_id": report_id})
    return report_id


def _by_token(conn, token: str):
    """Return the report of a link token, or None."""
    if not isinstance(token, str) or not 10 <= len(token) <= 64:
        return None
    return sql.run(conn, _statements().by_token, token=token).fetchone()


def confirm(conn, token: str, now: datetime) -> bool:
    """Confirm a report's address; an answer given meanwhile is then sent. False for an unknown link."""
    row = _by_token(conn, token)
    if row is None:
        return False
    if row["confirmed_at"] is None:
        sql.run(conn, _statements().confirm, confirmed_at=db.iso(now), id=row["id"])
        if row["answer"]:
            letters.record(conn, "feedback_answered", {"feedback_id": row["id"]})
    return True


def forget_link(conn, token: str) -> bool:
    """Delete the address of a report (its link); the report stays for staff. False for an unknown link."""
    return sql.run(conn, _statements().forget_link, token=token).rowcount > 0


def forget(conn, email: str) -> int:
    """Delete an address from every report (a person's request); return how many reports held it."""
    return sql.run(conn, _statements().forget, email=normalise_email(email)).rowcount


def purge_unconfirmed(conn, now: datetime, days: int = PENDING_DAYS) -> int:
    """Delete addresses not confirmed within ``days``; return how many."""
    return sql.run(conn, _statements().purge, cutoff=db.iso(now - timedelta(days=days))).rowcount


def get(conn, report_id: int):
    """Return one report, or raise FeedbackError naming the ids that exist."""
    q = _statements()
    row = sql.run(conn, q.by_id, id=report_id).fetchone()
    if row is None:
        open_ids = [str(r[0]) for r in sql.run(conn, q.open_ids)]
        raise FeedbackError(f"there is no feedback report {report_id}; open reports: "
                            f"{', '.join(open_ids) or 'none'} (see: python scripts/feedback.py list)")
    return row


def answer(conn, report_id: int, text: str, author: str, now: datetime) -> bool:
    """Record staff's answer (sent to a confirmed address); return whether an e-mail will go out."""
    row = get(conn, report_id)
    if row["closed_at"] is not None:
        raise FeedbackError(f"feedback report {report_id} is closed; answer an open one")
    sql.run(conn, _statements().answer, answer=text, answered_at=db.iso(now), answered_by=author,
            id=report_id)
    if row["email"] and row["confirmed_at"]:
        letters.record(conn, "feedback_answered", {"feedback_id": report_id})
        return True
    return False


def close(conn, report_id: int, now: datetime) -> None:
    """Close a report (it no longer counts as open)."""
    row = get(conn, report_id)
    if row["closed_at"] is not None:
        raise FeedbackError(f"feedback report {report_id} is already closed")
    sql.run(conn, _statements().close, closed_at=db.iso(now), id=report_id)


def staff_list(conn, everything: bool = False) -> list:
    """Return reports for staff, newest first (open ones only unless ``everything``)."""
    q = _statements()
    return sql.run(conn, q.every if everything else q.open).fetchall()


def town_stats(conn, town: str, promised_days: int) -> dict:
    """Return what the public sees of a town's reports: open count, median days to an answer, the promise."""
    rows = sql.run(conn, _statements().town, town=town).fetchall()
    waits = [(db.parse_iso(r[1]) - db.parse_iso(r[0])).total_seconds() / 86400 for r in rows if r[1]]
    return {"open": sum(1 for r in rows if r[2] is None),
            "answered": len(waits),
            "median_days_to_answer": round(statistics.median(waits), 1) if waits else None,
            "promised_days": promised_days}


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    f = sql.table("feedback")
    value = sa.bindparam
    with_email = f.c.email.is_not(None)
    return SimpleNamespace(
        insert=sql.Statement(sa.insert(f).values({c: value(c) for c in (
            "town", "cell", "lat", "lon", "technology", "message", "email", "lang", "token", "created_at")})
            .returning(f.c.id)),
        by_token=sql.Statement(sa.select(f).where(f.c.token == value("token"), with_email)),
        confirm=sql.Statement(sa.update(f).where(f.c.id == value("id")).values(
            confirmed_at=value("confirmed_at"))),
        forget_link=sql.Statement(sa.update(f).where(f.c.token == value("token"), with_email)
                                  .values(email=sa.null())),
        forget=sql.Statement(sa.update(f).where(f.c.email == value("email")).values(email=sa.null())),
        purge=sql.Statement(sa.update(f).where(with_email, f.c.confirmed_at.is_(None),
                                               f.c.created_at < value("cutoff")).values(email=sa.null())),
        by_id=sql.Statement(sa.select(f).where(f.c.id == value("id"))),
        open_ids=sql.Statement(sa.select(f.c.id).where(f.c.closed_at.is_(None)).order_by(f.c.id.desc())
                               .limit(10)),
        answer=sql.Statement(sa.update(f).where(f.c.id == value("id")).values(
            answer=value("answer"), answered_at=sa.func.coalesce(f.c.answered_at, value("answered_at")),
            answered_by=value("answered_by"))),
        close=sql.Statement(sa.update(f).where(f.c.id == value("id")).values(closed_at=value("closed_at"))),
        every=sql.Statement(sa.select(f).order_by(f.c.id.desc())),
        open=sql.Statement(sa.select(f).where(f.c.closed_at.is_(None)).order_by(f.c.id.desc())),
        town=sql.Statement(sa.select(f.c.created_at, f.c.answered_at, f.c.closed_at).where(
            f.c.town == value("town"))),
    )
