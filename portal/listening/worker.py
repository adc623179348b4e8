"""What the worker does: fan out due events, deliver due messages, and the once-a-minute check.

``dispatch`` runs when the queue is nudged (a staff write, a new subscription, a retry coming
due) and ``tick`` once a minute (``queue``); ``run_once`` does both until nothing is due,
for ``scripts/notify.py run --once``. The tables are the source of truth: a lost nudge only
delays a message until the next tick.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql
from portal.listening import (
    deliveries,
    feedback,
    interest,
    letters,
    messages,
    outbox,
    smtp,
    store,
    subscriptions,
    webhooks,
)

log = logging.getLogger("portal.listening")
# Deliveries and events kept this long after they are done (the history "status" shows).
KEEP_DAYS = 30
EXTEND_EVERY_S = 30.0


def _towns(conn) -> dict:
    """Return ``{slug: (name, name_ru)}`` of the live towns."""
    return letters._towns(conn)


def fan_out_due(conn, settings, now_ts: float | None = None) -> int:
    """Fan out every event that is due (one transaction each); return the deliveries created."""
    now_ts = time.time() if now_ts is None else now_ts
    made = 0
    staff = staff_recipients(settings)
    for event_id in outbox.due_events(conn, now_ts, settings.fold_s):
        with store.transaction(conn):
            made += outbox.fan_out(conn, event_id, now_ts, staff)
    return made


def staff_recipients(settings) -> tuple:
    """Return ``(channel, address, lang)`` of every staff recipient the settings name."""
    found = [("email", a, settings.staff_lang) for a in settings.staff_emails]
    if settings.staff_webhook:
        found.append(("webhook", settings.staff_webhook, settings.staff_lang))
    return tuple(found)


class Sender:
    """Delivers claimed rows over the channels, marking each the moment it is accepted."""

    def __init__(self, conn, settings, me: str):
        """Open nothing yet: the mailer connects on the first message."""
        self.conn, self.settings, self.me = conn, settings, me
        self.mailer = None
        self.renderer = messages.Renderer(settings, _towns(conn))
        self._folded: dict[int, list] = {}
        self.counts = {"sent": 0, "retry": 0, "failed": 0}
        self._extended = time.monotonic()

    def folded(self, event_id: int) -> list:
        """Return the updates folded into an event (read once per event)."""
        found = self._folded.get(event_id)
        if found is None:
            found = self._folded[event_id] = outbox.folded_updates(self.conn, event_id)
        return found

    def batch(self, rows, stop: threading.Event | None = None) -> None:
        """Send one claimed batch; what cannot be sent now is put back with its backoff."""
        mail_down = None
        for n, row in enumerate(rows):
            if stop is not None and stop.is_set():
                deliveries.release(self.conn, [r["id"] for r in rows[n:]])
                return
            if time.monotonic() - self._extended > EXTEND_EVERY_S:
                deliveries.extend(self.conn, self.me, time.time())
                self._extended = time.monotonic()
            if row["channel"] == "email" and mail_down is not None:
                self._retry(row, mail_down)
                continue
            try:
                if row["channel"] == "email":
                    self._email(row)
                else:
                    self._webhook(row)
            except webhooks.Gone as exc:
                with store.transaction(self.conn):
                    subscriptions.unsubscribe_id(self.conn, row["subscription_id"])
                log.info("webhook subscription %s ended: %s", row["subscription_id"], exc)
                self.counts["failed"] += 1
            except smtp.Permanent as exc:
                deliveries.mark_failed(self.conn, row["id"], str(exc))
                self.counts["failed"] += 1
                log.warning("delivery %s refused for good: %s", row["id"], exc)
            except smtp.Temporary as exc:
                self._retry(row, str(exc))
                if row["channel"] == "email":
                    # The relay is down: the rest of this batch's mail waits too, without trying.
                    mail_down = str(exc)
                    log.warning("mail server unavailable, retrying later: %s", exc)
            else:
                deliveries.mark_sent(self.conn, row["id"], time.time())
                self.counts["sent"] += 1

    def _retry(self, row, error: str) -> None:
        """Put one delivery back with its backoff."""
        deliveries.mark_retry(self.conn, [row["id"]], time.time(), error, self.settings.retry_s)
        self.counts["retry"] += 1

    def _email(self, row) -> None:
        """Send one e-mail."""
        if self.mailer is None:
            self.mailer = smtp.mailer_for(self.settings)
        self.mailer.send(row["address"], self.renderer.email(row, self.folded))

    def _webhook(self, row) -> None:
        """POST one webhook."""
        body = self.renderer.webhook(row, self.folded)
        webhooks.post(row["address"], body, secret=row["secret"] or "", event=body["type"],
                      key=messages.delivery_key(row["event_id"], row["subscription_id"]),
                      allow_private=self.settings.webhook_allow_private)

    def close(self) -> None:
        """Close the mail connection."""
        if self.mailer is not None:
            self.mailer.close()


def deliver_due(conn, settings, me: str, stop: threading.Event | None = None,
                batch: int = deliveries.BATCH) -> dict:
    """Claim and send due deliveries until none is due; return counts."""
    sender = Sender(conn, settings, me)
    try:
        while stop is None or not stop.is_set():
            rows = deliveries.claim(conn, me, time.time(), batch)
            if not rows:
                break
            sender.batch(rows, stop)
    finally:
        sender.close()
    return sender.counts


def dispatch(settings, me: str | None = None, stop: threading.Event | None = None, helper=None) -> dict:
    """Fan out what is due and deliver it; return counts and when the next retry is due.

    ``helper()`` is called once when the fan-out made more than one batch: the queue then runs
    another dispatch beside this one (a second mail connection).
    """
    conn = store.connect(settings.database)
    try:
        made = fan_out_due(conn, settings)
        if helper is not None and made > deliveries.BATCH:
            helper()
        counts = deliver_due(conn, settings, me or deliveries.worker_id(), stop)
        for key, n in letters.deliver_due(conn, settings, me or deliveries.worker_id(), stop).items():
            counts[key] += n
        delivery_due = deliveries.next_due(conn)
        letter_due = letters.next_due(conn)
        event_due = sql.scalar(conn, _statements().event_due, fold_s=settings.fold_s)
    finally:
        conn.close()
    next_due = min([t for t in (delivery_due, event_due, letter_due) if t is not None], default=None)
    return {"fanned_out": made, **counts, "next_due": next_due}


def tick(settings, now: datetime | None = None) -> dict:
    """Once a minute: recover dead workers' claims, record periodic events, forget what is old."""
    now = now or db.utcnow()
    now_ts = now.timestamp()
    conn = store.connect(settings.database)
    try:
        recovered = deliveries.recover(conn, now_ts) + letters.recover(conn, now_ts)
        with store.transaction(conn):
            recorded = outbox.record_periodic(conn, now, dict(settings.deadlines))
            purged = subscriptions.purge_unconfirmed(conn, now)
            purged += interest.purge_unconfirmed(conn, now) + feedback.purge_unconfirmed(conn, now)
            forget_old(conn, now_ts)
    finally:
        conn.close()
    return {"recovered": recovered, "recorded": len(recorded), "purged": purged}


def forget_old(conn, now_ts: float) -> None:
    """Delete deliveries, letters and events done ``KEEP_DAYS`` ago, and rate counts of two days ago."""
    q = _statements()
    old = now_ts - KEEP_DAYS * 86400
    sql.run(conn, q.old_letters, old=old)
    sql.run(conn, q.old_deliveries, old=old)
    sql.run(conn, q.old_events, old=old)
    sql.run(conn, q.old_counts, window=int(now_ts) - 2 * 86400)


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    o, d, t, r = sql.table("outbox"), sql.table("deliveries"), sql.table("letters"), sql.table("rate_counts")
    value = sa.bindparam

    def done(q):
        # Written out: the literals show in the SQL as they did.
        return sa.and_(q.c.state.in_([sql.const("sent"), sql.const("failed")]),
                       sa.func.coalesce(q.c.sent_at, q.c.due_at) < value("old"))

    return SimpleNamespace(
        # When the next pending event is due: an update waits ``fold_s`` after it was recorded.
        event_due=sql.Statement(sa.select(sa.func.min(sa.case(
            (o.c.kind == sql.const("updated"), o.c.created_at + value("fold_s")), else_=o.c.due_at)))
            .where(o.c.state == sql.const("pending"))),
        old_letters=sql.Statement(sa.delete(t).where(done(t))),
        old_deliveries=sql.Statement(sa.delete(d).where(done(d))),
        old_events=sql.Statement(sa.delete(o).where(
            o.c.state != sql.const("pending"), o.c.created_at < value("old"),
            ~sa.exists().where(d.c.event_id == o.c.id), ~sa.exists().where(t.c.event_id == o.c.id))),
        old_counts=sql.Statement(sa.delete(r).where(r.c.window < value("window"))),
    )


def run_once(settings) -> dict:
    """Do everything due now (the periodic check included), then return the totals."""
    totals = tick(settings)
    me = deliveries.worker_id()
    summed = {"fanned_out": 0, "sent": 0, "retry": 0, "failed": 0}
    while True:
        found = dispatch(settings, me)
        for key in summed:
            summed[key] += found[key]
        if not found["fanned_out"] and not (found["sent"] + found["failed"]):
            break
    return {**totals, **summed, "next_due": found["next_due"]}

