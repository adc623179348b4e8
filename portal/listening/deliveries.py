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

from portal.listening import store

BATCH = 200
LEASE_S = 120.0
MAX_ATTEMPTS = 12
MAX_BACKOFF_S = 3600.0


def worker_id() -> str:
    """Return this process's name in claims: host, pid and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def claim(conn, me: str, now_ts: float, limit: int = BATCH) -> list:
    """Claim up to ``limit`` due deliveries for this worker; return them with their event and subscription."""
    with store.transaction(conn):
        ids = [r[0] for r in conn.execute(
            "UPDATE deliveries SET state = 'sending', claimed_by = ?, claimed_until = ?, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND due_at <= ?"
            " ORDER BY due_at, id LIMIT ?) RETURNING id", (me, now_ts + LEASE_S, now_ts, limit))]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return conn.execute(
        "SELECT d.id, d.event_id, d.subscription_id, d.attempts, s.channel, s.address, s.secret, s.token,"
        " s.town, s.cell, s.lat, s.lon, s.services, s.lang, s.confirmed_at, e.kind, e.payload"
        " FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN outbox e ON e.id = d.event_id"
        f" WHERE d.id IN ({marks}) ORDER BY d.id", ids).fetchall()


def extend(conn, me: str, now_ts: float) -> None:
    """Extend this worker's claims (a slow batch keeps them)."""
    conn.execute("UPDATE deliveries SET claimed_until = ? WHERE state = 'sending' AND claimed_by = ?",
                 (now_ts + LEASE_S, me))


def mark_sent(conn, delivery_id: int, now_ts: float) -> None:
    """Record that the channel accepted the message (its own commit, at once)."""
    conn.execute("UPDATE deliveries SET state = 'sent', sent_at = ?, claimed_by = NULL, claimed_until = NULL,"
                 " error = NULL WHERE id = ?", (now_ts, delivery_id))


def backoff_s(attempts: int, first_s: float) -> float:
    """Return the wait before the next attempt: ``first_s``, then doubling, at most an hour."""
    return min(first_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)


def mark_retry(conn, delivery_ids, now_ts: float, error: str, first_s: float) -> None:
    """Put deliveries back to pending after a temporary failure, due again after their backoff."""
    with store.transaction(conn):
        for delivery_id in delivery_ids:
            row = conn.execute("SELECT attempts FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                continue
            if row[0] >= MAX_ATTEMPTS:
                _fail(conn, delivery_id, f"gave up after {row[0]} attempts: {error}")
                continue
            conn.execute(
                "UPDATE deliveries SET state = 'pending', due_at = ?, claimed_by = NULL, claimed_until = NULL,"
                " error = ? WHERE id = ?", (now_ts + backoff_s(row[0], first_s), error[:500], delivery_id))


def release(conn, delivery_ids) -> None:
    """Give claimed deliveries back unattempted (the worker stops early), due at once."""
    with store.transaction(conn):
        conn.executemany("UPDATE deliveries SET state = 'pending', attempts = max(attempts - 1, 0),"
                         " claimed_by = NULL, claimed_until = NULL WHERE id = ? AND state = 'sending'",
                         [(i,) for i in delivery_ids])


def mark_failed(conn, delivery_id: int, error: str) -> None:
    """Give up a delivery for good (the address or endpoint refused it)."""
    _fail(conn, delivery_id, error)


def _fail(conn, delivery_id: int, error: str) -> None:
    """Mark one delivery failed."""
    conn.execute("UPDATE deliveries SET state = 'failed', claimed_by = NULL, claimed_until = NULL, error = ?"
                 " WHERE id = ?", (error[:500], delivery_id))


def recover(conn, now_ts: float, host: str | None = None) -> int:
    """Put back to pending what dead workers left ``sending``: on this host at once, elsewhere after the lease.

    The one delivery a worker had handed to the channel when it died may have been accepted:
    it is sent again with the same Message-ID.
    """
    host = host or socket.gethostname()
    stale = []
    for row in conn.execute("SELECT DISTINCT claimed_by FROM deliveries WHERE state = 'sending'").fetchall():
        owner = row[0] or ""
        name, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if name == host and pid.isdigit() and not _alive(int(pid)):
            stale.append(owner)
    with store.transaction(conn):
        count = conn.execute("UPDATE deliveries SET state = 'pending', due_at = ?, claimed_by = NULL,"
                             " claimed_until = NULL WHERE state = 'sending' AND claimed_until < ?",
                             (now_ts, now_ts)).rowcount
        for owner in stale:
            count += conn.execute("UPDATE deliveries SET state = 'pending', due_at = ?, claimed_by = NULL,"
                                  " claimed_until = NULL WHERE state = 'sending' AND claimed_by = ?",
                                  (now_ts, owner)).rowcount
    return count


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
    states = {r[0]: r[1] for r in conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state")}
    due = conn.execute("SELECT count(*), min(due_at) FROM deliveries WHERE state = 'pending' AND due_at <= ?",
                       (now_ts,)).fetchone()
    later = conn.execute("SELECT count(*), min(due_at) FROM deliveries WHERE state = 'pending'"
                         " AND error IS NOT NULL").fetchone()
    error = conn.execute("SELECT error FROM deliveries WHERE state = 'pending' AND error IS NOT NULL"
                         " ORDER BY due_at DESC LIMIT 1").fetchone()
    events = {r[0]: r[1] for r in conn.execute("SELECT state, count(*) FROM outbox GROUP BY state")}
    subs = conn.execute("SELECT count(*) FILTER (WHERE confirmed_at IS NOT NULL),"
                        " count(*) FILTER (WHERE confirmed_at IS NULL) FROM subscriptions").fetchone()
    return {
        "deliveries": {s: states.get(s, 0) for s in ("pending", "sending", "sent", "failed")},
        "due_now": due[0], "oldest_due_s": round(now_ts - due[1], 1) if due[1] else None,
        "retry_later": later[0], "next_retry_in_s": round(later[1] - now_ts, 1) if later[1] else None,
        "last_error": error[0] if error else None,
        "events": {s: events.get(s, 0) for s in ("pending", "done", "folded")},
        "subscriptions": {"confirmed": subs[0], "pending": subs[1]},
    }
