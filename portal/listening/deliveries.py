"""Deliveries: claimed in batches, marked one by one, retried with backoff, recovered after a crash.

States: ``pending`` (due at ``due_at``) → ``sending`` (claimed by one worker until
``claimed_until``) → ``sent``; or back to ``pending`` later after a temporary failure; or
``failed`` for good (refused by the mail server, a webhook's 4xx, too many attempts).

Each delivery is marked sent in its own commit the moment the channel accepted it. A worker
killed between the mail server's "250 OK" and that commit leaves the row ``sending``: the
next worker puts it back to ``pending`` and sends it again, with the same Message-ID
(RFC 1047's duplicate window; see docs/architecture.md). Rows of a dead worker on this
machine are recovered at once, others when their claim expires.
"""
from __future__ import annotations

import os
import socket
import time
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import statements as sql
from portal.listening import store

BATCH = 200
LEASE_S = 120.0
MAX_ATTEMPTS = 12
MAX_BACKOFF_S = 3600.0
# Claimed rows are read this many ids per statement (one statement for a whole batch).
CHUNK = BATCH


def worker_id() -> str:
    """Return this process's name in claims: host, pid and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def claim(conn, me: str, now_ts: float, limit: int = BATCH) -> list:
    """Claim up to ``limit`` due deliveries for this worker; return them with their event and subscription.

    On PostgreSQL the due rows are locked as they are picked and rows another worker is claiming
    are skipped (``FOR UPDATE SKIP LOCKED``): two workers never claim the same row. SQLite has
    one writer at a time (``BEGIN IMMEDIATE``).
    """
    q = _statements()
    with store.transaction(conn):
        ids = sorted(r[0] for r in sql.run(conn, q.claim, me=me, until=now_ts + LEASE_S, now=now_ts,
                                           limit=limit))
    return claimed(conn, q.claimed, ids)


def claimed(conn, statement, ids: list) -> list:
    """Return the rows of claimed ids in order, ``CHUNK`` ids a statement (``NULL`` fills the last one)."""
    rows = []
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        rows += sql.run(conn, statement, **{f"i{k}": part[k] if k < len(part) else None
                                            for k in range(CHUNK)}).fetchall()
    return rows


def extend(conn, me: str, now_ts: float) -> None:
    """Extend this worker's claims (a slow batch keeps them)."""
    sql.run(conn, _statements().extend, until=now_ts + LEASE_S, me=me)


def mark_sent(conn, delivery_id: int, now_ts: float) -> None:
    """Record that the channel accepted the message (its own commit, at once)."""
    sql.run(conn, _statements().sent, sent_at=now_ts, id=delivery_id)


def backoff_s(attempts: int, first_s: float) -> float:
    """Return the wait before the next attempt: ``first_s``, then doubling, at most an hour."""
    return min(first_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)


def mark_retry(conn, delivery_ids, now_ts: float, error: str, first_s: float) -> None:
    """Put deliveries back to pending after a temporary failure, due again after their backoff."""
    q = _statements()
    with store.transaction(conn):
        for delivery_id in delivery_ids:
            attempts = sql.scalar(conn, q.attempts, id=delivery_id)
            if attempts is None:
                continue
            if attempts >= MAX_ATTEMPTS:
                _fail(conn, delivery_id, f"gave up after {attempts} attempts: {error}")
                continue
            sql.run(conn, q.retry, due_at=now_ts + backoff_s(attempts, first_s), error=error[:500],
                    id=delivery_id)


def release(conn, delivery_ids) -> None:
    """Give claimed deliveries back unattempted (the worker stops early), due at once."""
    q = _statements()
    with store.transaction(conn):
        for delivery_id in delivery_ids:
            sql.run(conn, q.release, id=delivery_id)


def mark_failed(conn, delivery_id: int, error: str) -> None:
    """Give up a delivery for good (the address or endpoint refused it)."""
    _fail(conn, delivery_id, error)


def _fail(conn, delivery_id: int, error: str) -> None:
    """Mark one delivery failed."""
    sql.run(conn, _statements().failed, error=error[:500], id=delivery_id)


def recover(conn, now_ts: float, host: str | None = None) -> int:
    """Put back to pending what dead workers left ``sending``: on this host at once, elsewhere after the lease.

    The one delivery a worker had handed to the channel when it died may have been accepted:
    it is sent again with the same Message-ID.
    """
    return recover_claims(conn, _statements(), now_ts, host)


def recover_claims(conn, q, now_ts: float, host: str | None = None) -> int:
    """Recover the claims of a queue table (its ``claim_statements`` ``q``); return how many."""
    host = host or socket.gethostname()
    stale = []
    for row in sql.run(conn, q.owners).fetchall():
        owner = row[0] or ""
        name, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if name == host and pid.isdigit() and not _alive(int(pid)):
            stale.append(owner)
    with store.transaction(conn):
        count = sql.run(conn, q.expired, now=now_ts).rowcount
        for owner in stale:
            count += sql.run(conn, q.orphaned, now=now_ts, owner=owner).rowcount
    return count


def next_due(conn) -> float | None:
    """Return when the next pending delivery is due."""
    return sql.scalar(conn, _statements().next_due)


def _alive(pid: int) -> bool:
    """Return whether a process with this id exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(conn, now_ts: float) -> dict:
    """Return the queue in numbers: deliveries by state, due now, events waiting, oldest due."""
    q = _statements()
    states = {r[0]: r[1] for r in sql.run(conn, q.states)}
    due = sql.run(conn, q.due, now=now_ts).fetchone()
    later = sql.run(conn, q.later).fetchone()
    error = sql.run(conn, q.last_error).fetchone()
    events = {r[0]: r[1] for r in sql.run(conn, q.events)}
    subs = sql.run(conn, q.subscriptions).fetchone()
    return {
        "deliveries": {s: states.get(s, 0) for s in ("pending", "sending", "sent", "failed")},
        "due_now": due[0], "oldest_due_s": round(now_ts - due[1], 1) if due[1] else None,
        "retry_later": later[0], "next_retry_in_s": round(later[1] - now_ts, 1) if later[1] else None,
        "last_error": error[0] if error else None,
        "events": {s: events.get(s, 0) for s in ("pending", "done", "folded")},
        "subscriptions": {"confirmed": subs[0], "pending": subs[1]},
    }


def claim_statements(t, claimed_columns, joined) -> SimpleNamespace:
    """Return the statements that claim, keep, mark and recover rows of a queue table ``t``.

    ``deliveries`` and ``letters`` share them: ``claimed_columns`` and ``joined`` (a join from
    ``t``) make the read of the claimed rows.
    """
    value = sa.bindparam
    pending, sending = sql.const("pending"), sql.const("sending")
    # The due rows, locked as they are picked on PostgreSQL (SQLite writes one at a time: no lock).
    due = (sa.select(t.c.id).where(t.c.state == pending, t.c.due_at <= value("now"))
           .order_by(t.c.due_at, t.c.id).limit(value("limit")).with_for_update(skip_locked=True))
    free = {"claimed_by": sa.null(), "claimed_until": sa.null()}
    back = {"state": "pending", "due_at": value("now"), **free}
    return SimpleNamespace(
        claim=sql.Statement(sa.update(t).where(t.c.id.in_(due)).values(
            state="sending", claimed_by=value("me"), claimed_until=value("until"), attempts=t.c.attempts + 1)
            .returning(t.c.id)),
        claimed=sql.Statement(sa.select(*claimed_columns).select_from(joined)
                              .where(t.c.id.in_([value(f"i{k}") for k in range(CHUNK)])).order_by(t.c.id)),
        extend=sql.Statement(sa.update(t).where(t.c.state == sending, t.c.claimed_by == value("me"))
                             .values(claimed_until=value("until"))),
        sent=sql.Statement(sa.update(t).where(t.c.id == value("id")).values(
            state="sent", sent_at=value("sent_at"), error=sa.null(), **free)),
        attempts=sql.Statement(sa.select(t.c.attempts).where(t.c.id == value("id"))),
        retry=sql.Statement(sa.update(t).where(t.c.id == value("id")).values(
            state="pending", due_at=value("due_at"), error=value("error"), **free)),
        release=sql.Statement(sa.update(t).where(t.c.id == value("id"), t.c.state == sending).values(
            state="pending", attempts=sa.case((t.c.attempts > 0, t.c.attempts - 1), else_=0), **free)),
        failed=sql.Statement(sa.update(t).where(t.c.id == value("id")).values(
            state="failed", error=value("error"), **free)),
        owners=sql.Statement(sa.select(t.c.claimed_by).where(t.c.state == sending).distinct()),
        expired=sql.Statement(sa.update(t).where(t.c.state == sending, t.c.claimed_until < value("now"))
                              .values(back)),
        orphaned=sql.Statement(sa.update(t).where(t.c.state == sending, t.c.claimed_by == value("owner"))
                               .values(back)),
        next_due=sql.Statement(sa.select(sa.func.min(t.c.due_at)).where(t.c.state == pending)),
    )


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    d, s, e = sql.table("deliveries"), sql.table("subscriptions"), sql.table("outbox")
    q = claim_statements(
        d, [d.c.id, d.c.event_id, d.c.subscription_id, d.c.attempts, s.c.channel, s.c.address,
            s.c.secret, s.c.token, s.c.town, s.c.cell, s.c.lat, s.c.lon, s.c.services, s.c.lang,
            s.c.confirmed_at, e.c.kind, e.c.payload],
        d.join(s, s.c.id == d.c.subscription_id).join(e, e.c.id == d.c.event_id))
    pending = sql.const("pending")
    retrying = sa.and_(d.c.state == pending, d.c.error.is_not(None))
    count = sa.func.count()
    return SimpleNamespace(
        **vars(q),
        states=sql.Statement(sa.select(d.c.state, count).group_by(d.c.state)),
        due=sql.Statement(sa.select(count, sa.func.min(d.c.due_at))
                          .where(d.c.state == pending, d.c.due_at <= sa.bindparam("now"))),
        later=sql.Statement(sa.select(count, sa.func.min(d.c.due_at)).where(retrying)),
        last_error=sql.Statement(sa.select(d.c.error).where(retrying).order_by(d.c.due_at.desc()).limit(1)),
        events=sql.Statement(sa.select(e.c.state, count).group_by(e.c.state)),
        subscriptions=sql.Statement(sa.select(count.filter(s.c.confirmed_at.is_not(None)),
                                              sa.func.count().filter(s.c.confirmed_at.is_(None)))),
    )
