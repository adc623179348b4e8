"""Letters: e-mail to one person that is not a subscription's notification.

"Bring fiber here" and "this answer is wrong here" mail the person who wrote in: the
confirmation of their address (double opt-in), the news that coverage arrived at their place,
and staff's answer to their report. They ride the same machinery as notifications:

- the write that causes a letter records an event in ``outbox`` inside its own transaction
  (``record``; kinds in ``KINDS``), whatever the number of recipients;
- the worker fans a due event out (``outbox.fan_out`` hands these kinds to ``fan_out``) to one
  ``letters`` row per recipient, which names the ``interest`` or ``feedback`` row, never an
  address: deleting that row (forget) deletes its letters, so nothing goes out afterwards;
- rows are claimed, marked sent one by one, retried with the deliveries' backoff and recovered
  after a crash exactly like ``deliveries``; each carries a stable Message-ID
  (``<e<event>.i<interest>.notify@domain>`` or ``.f<feedback>``).

Created by ``m014_feedback`` (``create``).
"""
from __future__ import annotations

import json
import threading
import time
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from types import SimpleNamespace

import sqlalchemy as sa
from markupsafe import escape

from portal import vocabulary
from portal.data import statements as sql
from portal.listening import deliveries, messages, smtp, store

KINDS = ("interest_confirm", "coverage_arrived", "feedback_confirm", "feedback_answered")


def create(db) -> None:
    """Create the ``letters`` table (``db`` is a sqlite-utils Database inside the migration)."""
    db.execute(
        """CREATE TABLE letters (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES outbox(id),
            interest_id INTEGER REFERENCES interest(id) ON DELETE CASCADE,
            feedback_id INTEGER REFERENCES feedback(id) ON DELETE CASCADE,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at REAL NOT NULL,
            claimed_by TEXT,
            claimed_until REAL,
            sent_at REAL,
            error TEXT,
            CHECK ((interest_id IS NULL) <> (feedback_id IS NULL))
        )"""
    )
    db.execute("CREATE UNIQUE INDEX letters_once ON letters(event_id, coalesce(interest_id, 0),"
               " coalesce(feedback_id, 0))")
    db.execute("CREATE INDEX letters_due ON letters(due_at) WHERE state = 'pending'")


def record(conn, kind: str, payload: dict) -> int:
    """Record one event for letters inside the caller's transaction; return its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown letter kind {kind!r}")
    stamp = time.time()
    return sql.scalar(conn, _statements().record, kind=kind, payload=json.dumps(payload, ensure_ascii=False),
                      created_at=stamp, due_at=stamp)


def fan_out(conn, event, now_ts: float) -> int:
    """Create the letters of one due event (inside the caller's transaction); return how many."""
    q = _statements()
    payload = json.loads(event["payload"])
    if event["kind"] == "interest_confirm":
        rows = [(payload["interest_id"], None)]
    elif event["kind"] == "coverage_arrived":
        rows = [(a["interest_id"], None) for a in payload["arrivals"]]
    else:
        rows = [(None, payload["feedback_id"])]
    # Confirmation letters go to an address as it stands; the others to confirmed addresses only.
    exists = getattr(q, event["kind"])
    made = 0
    for interest_id, feedback_id in rows:
        if sql.scalar(conn, exists, id=interest_id or feedback_id) is None:
            continue  # forgotten meanwhile, or never confirmed
        made += sql.run(conn, q.insert, event_id=event["id"], interest_id=interest_id,
                        feedback_id=feedback_id, due_at=now_ts).rowcount
    return made


# --- delivery -----------------------------------------------------------------------------


def claim(conn, me: str, now_ts: float, limit: int = deliveries.BATCH) -> list:
    """Claim up to ``limit`` due letters; return them with their event and recipient (as deliveries)."""
    q = _statements()
    until = now_ts + deliveries.LEASE_S
    with store.transaction(conn):
        ids = sorted(r[0] for r in sql.run(conn, q.claim, me=me, until=until, now=now_ts, limit=limit))
    return deliveries.claimed(conn, q.claimed, ids)


def mark_sent(conn, letter_id: int, now_ts: float) -> None:
    """Record that the mail server accepted the letter."""
    sql.run(conn, _statements().sent, sent_at=now_ts, id=letter_id)


def mark_retry(conn, row, now_ts: float, error: str, first_s: float) -> None:
    """Put a letter back to pending after a temporary failure (or give up after too many attempts)."""
    q = _statements()
    attempts = sql.scalar(conn, q.attempts, id=row["id"])
    if attempts is None:
        return
    if attempts >= deliveries.MAX_ATTEMPTS:
        mark_failed(conn, row["id"], f"gave up after {attempts} attempts: {error}")
        return
    due_at = now_ts + deliveries.backoff_s(attempts, first_s)
    sql.run(conn, q.retry, due_at=due_at, error=error[:500], id=row["id"])


def mark_failed(conn, letter_id: int, error: str) -> None:
    """Give a letter up for good."""
    sql.run(conn, _statements().failed, error=error[:500], id=letter_id)


def recover(conn, now_ts: float, host: str | None = None) -> int:
    """Put back what dead workers left ``sending`` (this host at once, others after the lease)."""
    return deliveries.recover_claims(conn, _statements(), now_ts, host)


def next_due(conn) -> float | None:
    """Return when the next pending letter is due."""
    return sql.scalar(conn, _statements().next_due)


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    t, e, i, f = sql.table("letters"), sql.table("outbox"), sql.table("interest"), sql.table("feedback")
    towns = sql.table("towns")
    value = sa.bindparam
    def either(name):  # the interest's or the feedback's
        return sa.func.coalesce(i.c[name], f.c[name]).label(name)

    q = deliveries.claim_statements(
        t, [t.c.id, t.c.event_id, t.c.interest_id, t.c.feedback_id, e.c.kind, e.c.payload,
            sa.func.coalesce(i.c.email, f.c.email).label("address"),
            *(either(c) for c in ("lang", "token", "town", "cell", "lat", "lon")),
            f.c.answer.label("answer")],
        t.join(e, e.c.id == t.c.event_id).outerjoin(i, i.c.id == t.c.interest_id)
        .outerjoin(f, f.c.id == t.c.feedback_id))

    def exists(who, confirmed: bool):
        where = [who.c.id == value("id"), who.c.email.is_not(None)]
        if confirmed:
            where.append(who.c.confirmed_at.is_not(None))
        return sql.Statement(sa.select(sa.literal(1)).where(*where))

    columns = {c: value(c) for c in ("event_id", "interest_id", "feedback_id", "due_at")}

    # Once per event and addressee (``letters_once``, an index on expressions: no key columns named).
    insert_once = sql.insert_ignoring(t, columns)

    return SimpleNamespace(
        **vars(q),
        record=sql.Statement(sa.insert(e).values(
            {c: value(c) for c in ("kind", "payload", "created_at", "due_at")}).returning(e.c.id)),
        interest_confirm=exists(i, False), coverage_arrived=exists(i, True),
        feedback_confirm=exists(f, False), feedback_answered=exists(f, True),
        insert=sql.Statement(insert_once),
        towns=sql.Statement(sa.select(towns.c.slug, towns.c.name, towns.c.name_ru)
                            .where(towns.c.layer_id == value("layer"))),
    )


def deliver_due(conn, settings, me: str, stop: threading.Event | None = None) -> dict:
    """Claim and send due letters until none is due; return counts."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    towns = _towns(conn)
    mailer = None
    try:
        while stop is None or not stop.is_set():
            rows = claim(conn, me, time.time())
            if not rows:
                break
            down = None
            for row in rows:
                if down is None:
                    try:
                        if mailer is None:
                            mailer = smtp.mailer_for(settings)
                        mailer.send(row["address"], email(row, settings, towns))
                    except smtp.Permanent as exc:
                        mark_failed(conn, row["id"], str(exc))
                        counts["failed"] += 1
                        continue
                    except smtp.Temporary as exc:
                        down = str(exc)
                    else:
                        mark_sent(conn, row["id"], time.time())
                        counts["sent"] += 1
                        continue
                mark_retry(conn, row, time.time(), down, settings.retry_s)
                counts["retry"] += 1
            if down is not None:
                break
    finally:
        if mailer is not None:
            mailer.close()
    return counts


def _towns(conn) -> dict:
    """Return ``{slug: (name, name_ru)}`` of the live towns."""
    from portal.data import layers

    live = layers.live_layer_ids(conn)["towns"]
    return {r[0]: (r[1], r[2]) for r in sql.run(conn, _statements().towns, layer=live)}


# --- content ------------------------------------------------------------------------------

N_ = vocabulary.N_
TECHNOLOGY = {"fiber": N_("fiber"), "cable": N_("cable"), "dsl": N_("DSL"), "wireless": N_("wireless")}


def content(row, words: messages.Words, settings, towns: dict) -> tuple[str, list[str], list[tuple[str, str]]]:
    """Return (subject, paragraphs, links as (label, url)) of one letter."""
    _ = words
    base = settings.base_url
    # A point names the point (its cell's centre), even when it lies in a town.
    where = {"town": None if row["cell"] else row["town"], "lat": row["lat"], "lon": row["lon"]}
    place = messages.place_name(words, where, towns)
    kind, payload = row["kind"], json.loads(row["payload"])
    if kind == "interest_confirm":
        return (_("Confirm your address: we will tell you when fiber arrives (%(place)s)", place=place),
                [_("Your household asked for fiber here: %(place)s. Open this link to confirm your e-mail "
                   "address; we will write once, when fiber arrives. Nothing is sent until you confirm.",
                   place=place),
                 _("If it was not you, ignore this message: the address is deleted after 7 days.")],
                [(_("Confirm"), f"{base}/interest/confirm/{row['token']}")])
    if kind == "coverage_arrived":
        mine = next((a for a in payload["arrivals"] if a["interest_id"] == row["interest_id"]), {})
        if mine.get("status") == "live":
            subject = _("Fiber has arrived: %(place)s", place=place)
            text = _("Good news: fiber is now available at your place: %(place)s. You asked to be told.",
                     place=place)
        else:
            subject = _("Fiber is planned: %(place)s", place=place)
            text = _("Good news: fiber is planned at your place from %(date)s: %(place)s. You asked to be told.",
                     place=place, date=mine.get("available_from") or "—")
        check = f"{base}/towns/{row['town']}" if where["town"] else f"{base}/check?lat={row['lat']}&lon={row['lon']}"
        return (subject, [text, _("This is the only message about it; your address is deleted on request.")],
                [(_("See what is available"), check),
                 (_("Delete my address and registration"), f"{base}/interest/forget/{row['token']}")])
    if kind == "feedback_confirm":
        return (_("Confirm your address to receive our answer (%(place)s)", place=place),
                [_("You told us that our answer about this place is wrong: %(place)s. Open this link to "
                   "confirm your e-mail address; our answer will be sent to it.", place=place),
                 _("If it was not you, ignore this message: the address is deleted after 7 days.")],
                [(_("Confirm"), f"{base}/feedback/confirm/{row['token']}")])
    return (_("Our answer to your report about %(place)s", place=place),
            [_("You told us that our answer about this place is wrong: %(place)s. Here is our answer:",
               place=place), row["answer"] or ""],
            [(_("Delete my address"), f"{base}/feedback/forget/{row['token']}")])


def email(row, settings, towns: dict) -> bytes:
    """Return one letter as an e-mail (plain text and HTML)."""
    words = messages.Words(row["lang"], settings.timezone)
    subject, paragraphs, links = content(row, words, settings, towns)
    text = "\n\n".join(paragraphs + [f"{label}: {url}" for label, url in links]) + "\n"
    html = (f'<!doctype html><html lang="{row["lang"]}"><head><meta charset="utf-8"><title>{escape(subject)}'
            '</title></head><body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">'
            + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
            + "".join(f'<p><a href="{escape(url)}">{escape(label)}</a></p>' for label, url in links)
            + "</body></html>\n")
    msg = MIMEMultipart("alternative")
    name, sender = parseaddr(settings.mail_from)
    msg["From"] = formataddr((name, sender), charset="utf-8") if name else sender  # a name may be Cyrillic
    msg["To"] = row["address"]
    msg["Subject"] = Header(subject, "utf-8", maxlinelen=76)
    msg["Date"] = formatdate(usegmt=True)
    who = f"i{row['interest_id']}" if row["interest_id"] else f"f{row['feedback_id']}"
    msg["Message-ID"] = f"<e{row['event_id']}.{who}.notify@{settings.mail_domain}>"
    msg["Content-Language"] = row["lang"]
    msg["Auto-Submitted"] = "auto-generated"
    if row["kind"] == "coverage_arrived":
        forget = f"{settings.base_url}/interest/forget/{row['token']}"
        msg["List-Unsubscribe"] = f"<{forget}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(html, "html", "utf-8"))
    # SMTP wants CRLF line ends; the base64 bodies and folded headers hold no other line break.
    return msg.as_bytes().replace(b"\n", b"\r\n")
