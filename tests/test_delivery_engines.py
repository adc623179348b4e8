"""Deliveries and letters on both engines: claims, marks, retries, recovery, letters' fan-out, forgetting.

Every test runs twice: on SQLite and on PostgreSQL (a private cluster). Rows are made with plain
SQL valid on both (``?`` becomes ``%s`` for psycopg) and the module's own functions; the fan-out
of incidents (``outbox``) is tested elsewhere.
"""
from __future__ import annotations

import json
import mailbox
import socket
import threading

import pytest
from listening_tools import settings_for

from portal.data import statements as sql
from portal.listening import deliveries, letters, messages, store, worker

T0 = 1_795_000_000.0
# A worker on this machine whose process is gone (pid 2**22 + 1 is beyond the pid range).
DEAD = f"{socket.gethostname()}:{2 ** 22 + 1}:0"


def execute(conn, text: str, *values):
    """Run plain SQL with ``?`` placeholders on either engine's driver."""
    if sql.dialect_of(conn) == sql.POSTGRESQL:
        text = text.replace("?", "%s")
    return conn.execute(text, values)


def subscription(conn, n: int, *, channel="email") -> int:
    """Insert a confirmed town subscription; return its id."""
    return execute(conn, "INSERT INTO subscriptions (channel, address, token, town, services, lang,"
                   " created_at, confirmed_at) VALUES (?, ?, ?, 'pskov', 7, 'en', '2026-11-01T00:00:00Z',"
                   " '2026-11-01T00:00:00Z') RETURNING id",
                   channel, f"user{n}@example.org", f"token{n}").fetchone()[0]


def event(conn, kind="opened", payload="{}", *, created_at=T0, state="pending") -> int:
    """Insert an outbox event; return its id."""
    return execute(conn, "INSERT INTO outbox (kind, payload, created_at, due_at, state)"
                   " VALUES (?, ?, ?, ?, ?) RETURNING id",
                   kind, payload, created_at, created_at, state).fetchone()[0]


def delivery(conn, event_id: int, subscription_id: int, due_at: float) -> int:
    """Insert a pending delivery; return its id."""
    return execute(conn, "INSERT INTO deliveries (event_id, subscription_id, due_at) VALUES (?, ?, ?)"
                   " RETURNING id", event_id, subscription_id, due_at).fetchone()[0]


def row_of(conn, table: str, row_id: int) -> dict:
    """Return one row of a queue table as a dict."""
    return dict(execute(conn, f"SELECT state, attempts, due_at, claimed_by, claimed_until, sent_at, error"
                        f" FROM {table} WHERE id = ?", row_id).fetchone())


@pytest.fixture
def conn(write_conn):
    assert execute(write_conn, "SELECT count(*) FROM deliveries").fetchone()[0] == 0
    return write_conn


def test_claim_takes_due_rows_oldest_first_up_to_the_limit(conn):
    e = event(conn)
    subs = [subscription(conn, n) for n in range(4)]
    ids = [delivery(conn, e, s, due) for s, due in zip(subs, (T0 - 10, T0 - 30, T0 - 20, T0 + 100))]
    first = deliveries.claim(conn, "w1", T0, limit=2)
    assert [r["id"] for r in first] == sorted([ids[1], ids[2]])
    row = first[0]
    assert (row["event_id"], row["attempts"], row["channel"], row["kind"], row["lang"]) == (
        e, 1, "email", "opened", "en")
    assert row["address"] == f"user{subs.index(row['subscription_id'])}@example.org"
    assert row_of(conn, "deliveries", ids[1]) | {"due_at": None} == {
        "state": "sending", "attempts": 1, "due_at": None, "claimed_by": "w1",
        "claimed_until": T0 + deliveries.LEASE_S, "sent_at": None, "error": None}
    assert [r["id"] for r in deliveries.claim(conn, "w2", T0)] == [ids[0]]
    assert deliveries.claim(conn, "w3", T0) == []  # the last one is not due yet
    assert [r["id"] for r in deliveries.claim(conn, "w3", T0 + 100)] == [ids[3]]


def test_a_claim_bigger_than_one_read_returns_every_row_in_order(conn):
    s = subscription(conn, 1)
    count = deliveries.CHUNK + 5
    with store.transaction(conn):
        ids = [delivery(conn, event(conn), s, T0 - n) for n in range(count)]
    rows = deliveries.claim(conn, "w1", T0, limit=count + 10)
    assert [r["id"] for r in rows] == sorted(ids)
    assert len({r["event_id"] for r in rows}) == count


def test_two_workers_never_claim_the_same_row(conn, db_target, engine):
    e = event(conn)
    ids = [delivery(conn, e, subscription(conn, n), T0 - n) for n in range(6)]
    other = store.connect(db_target)
    try:
        if engine == "postgresql":
            # The first worker's claim is not committed yet: the second skips its rows, without waiting.
            other.execute("BEGIN")
            claim = deliveries._statements().claim
            held = [r[0] for r in sql.run(other, claim, me="w1", until=T0 + 60, now=T0, limit=4)]
            mine = [r["id"] for r in deliveries.claim(conn, "w2", T0)]
            other.execute("COMMIT")
        else:  # one writer at a time: the second claim comes after the first
            held = [r["id"] for r in deliveries.claim(other, "w1", T0, limit=4)]
            mine = [r["id"] for r in deliveries.claim(conn, "w2", T0)]
    finally:
        other.close()
    assert len(held) == 4 and len(mine) == 2
    assert sorted(held + mine) == sorted(ids)


def test_concurrent_claims_share_the_rows_out(db_target):
    conn = store.connect(db_target)
    try:
        with store.transaction(conn):
            e = event(conn)
            ids = [delivery(conn, e, subscription(conn, n), T0 - n) for n in range(60)]
    finally:
        conn.close()
    found, errors = [], []

    def work(name):
        own = store.connect(db_target)
        try:
            while rows := deliveries.claim(own, name, T0, limit=5):
                found.extend(r["id"] for r in rows)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(found) == sorted(ids)  # every row once


def test_marks_sent_retried_failed_and_released(conn):
    e = event(conn)
    a, b, c, d = (delivery(conn, e, subscription(conn, n), T0) for n in range(4))
    assert len(deliveries.claim(conn, "w1", T0)) == 4
    deliveries.mark_sent(conn, a, T0 + 1)
    assert row_of(conn, "deliveries", a) == {"state": "sent", "attempts": 1, "due_at": T0, "claimed_by": None,
                                             "claimed_until": None, "sent_at": T0 + 1, "error": None}
    deliveries.mark_retry(conn, [b], T0 + 1, "421 busy", first_s=60)
    assert row_of(conn, "deliveries", b) == {"state": "pending", "attempts": 1, "due_at": T0 + 61,
                                             "claimed_by": None, "claimed_until": None, "sent_at": None,
                                             "error": "421 busy"}
    # The second attempt waits twice as long.
    assert [r["id"] for r in deliveries.claim(conn, "w1", T0 + 61)] == [b]
    deliveries.mark_retry(conn, [b], T0 + 62, "421 busy", first_s=60)
    assert row_of(conn, "deliveries", b)["due_at"] == T0 + 62 + 120
    deliveries.mark_failed(conn, c, "550 no such user " + "x" * 600)
    failed = row_of(conn, "deliveries", c)
    assert failed["state"] == "failed" and failed["claimed_by"] is None and len(failed["error"]) == 500
    deliveries.release(conn, [d, a])  # ``a`` was sent: it stays sent
    assert row_of(conn, "deliveries", d) | {"due_at": None} == {
        "state": "pending", "attempts": 0, "due_at": None, "claimed_by": None, "claimed_until": None,
        "sent_at": None, "error": None}
    assert row_of(conn, "deliveries", a)["state"] == "sent"
    # Too many attempts: given up for good.
    execute(conn, "UPDATE deliveries SET attempts = ? WHERE id = ?", deliveries.MAX_ATTEMPTS, b)
    deliveries.mark_retry(conn, [b, 10 ** 9], T0 + 400, "421 busy", first_s=60)
    gave_up = row_of(conn, "deliveries", b)
    assert gave_up["state"] == "failed"
    assert gave_up["error"] == f"gave up after {deliveries.MAX_ATTEMPTS} attempts: 421 busy"
    assert deliveries.next_due(conn) == T0


def test_extend_keeps_only_this_workers_claims(conn):
    e = event(conn)
    a, b = (delivery(conn, e, subscription(conn, n), T0) for n in range(2))
    deliveries.claim(conn, "w1", T0, limit=1)
    deliveries.claim(conn, "w2", T0, limit=1)
    deliveries.extend(conn, "w1", T0 + 90)
    assert row_of(conn, "deliveries", a)["claimed_until"] == T0 + 90 + deliveries.LEASE_S
    assert row_of(conn, "deliveries", b)["claimed_until"] == T0 + deliveries.LEASE_S


def test_recover_puts_back_dead_workers_claims_at_once_and_others_after_the_lease(conn):
    e = event(conn)
    dead, alive, elsewhere = (delivery(conn, e, subscription(conn, n), T0) for n in range(3))
    deliveries.claim(conn, DEAD, T0, limit=1)
    deliveries.claim(conn, deliveries.worker_id(), T0, limit=1)
    deliveries.claim(conn, "another-host:1:0", T0, limit=1)
    assert deliveries.recover(conn, T0 + 1) == 1
    assert row_of(conn, "deliveries", dead) | {"attempts": None} == {
        "state": "pending", "attempts": None, "due_at": T0 + 1, "claimed_by": None, "claimed_until": None,
        "sent_at": None, "error": None}
    assert row_of(conn, "deliveries", alive)["state"] == "sending"
    assert row_of(conn, "deliveries", elsewhere)["state"] == "sending"
    # Past the lease, every claim left is put back (this process's too: its lease ran out).
    assert deliveries.recover(conn, T0 + deliveries.LEASE_S + 1) == 2
    assert {row_of(conn, "deliveries", i)["state"] for i in (alive, elsewhere)} == {"pending"}


def test_status_counts_the_queue(conn):
    base = deliveries.status(conn, T0)
    e = event(conn)
    a, b, c, _d = (delivery(conn, e, subscription(conn, n), T0 - 50) for n in range(4))
    deliveries.claim(conn, "w1", T0, limit=3)
    deliveries.mark_sent(conn, a, T0)
    deliveries.mark_retry(conn, [b], T0, "421 busy", first_s=60)
    found = deliveries.status(conn, T0)
    assert found["deliveries"] == {"pending": 2, "sending": 1, "sent": 1, "failed": 0}
    assert (found["due_now"], found["oldest_due_s"]) == (1, 50.0)
    assert (found["retry_later"], found["next_retry_in_s"], found["last_error"]) == (1, 60.0, "421 busy")
    assert found["events"]["pending"] == base["events"]["pending"] + 1
    assert found["subscriptions"] == {"confirmed": base["subscriptions"]["confirmed"] + 4,
                                      "pending": base["subscriptions"]["pending"]}


def interest(conn, n: int, *, email: str | None, confirmed: bool) -> int:
    """Insert a "bring fiber here" registration; return its id."""
    return execute(conn, "INSERT INTO interest (household, town, email, lang, token, created_at,"
                   " confirmed_at) VALUES (?, 'pskov', ?, 'en', ?, '2026-11-01T00:00:00Z', ?) RETURNING id",
                   f"h{n}", email, f"itoken{n}", "2026-11-02T00:00:00Z" if confirmed else None).fetchone()[0]


def feedback(conn, n: int, *, confirmed: bool, answer: str | None = None) -> int:
    """Insert a "this answer is wrong here" report with an address; return its id."""
    return execute(conn, "INSERT INTO feedback (town, technology, message, email, lang, token, created_at,"
                   " confirmed_at, answer) VALUES ('pskov', 'fiber', 'wrong', ?, 'ru', ?,"
                   " '2026-11-01T00:00:00Z', ?, ?) RETURNING id", f"fb{n}@example.org", f"ftoken{n}",
                   "2026-11-02T00:00:00Z" if confirmed else None, answer).fetchone()[0]


def fan_out(conn, event_id: int, now_ts: float = T0) -> int:
    """Fan a letters event out as the worker does (inside a transaction)."""
    with store.transaction(conn):
        found = execute(conn, "SELECT * FROM outbox WHERE id = ?", event_id).fetchone()
        return letters.fan_out(conn, found, now_ts)


def test_letters_fan_out_once_to_the_addresses_that_may_have_them(conn):
    told = interest(conn, 1, email="ann@example.org", confirmed=True)
    unconfirmed = interest(conn, 2, email="bob@example.org", confirmed=False)
    forgotten = interest(conn, 3, email=None, confirmed=True)
    confirm = letters.record(conn, "interest_confirm", {"interest_id": unconfirmed})
    assert tuple(execute(conn, "SELECT kind, state FROM outbox WHERE id = ?", confirm).fetchone()) == \
        ("interest_confirm", "pending")
    assert fan_out(conn, confirm) == 1
    assert fan_out(conn, confirm) == 0  # once per event and person
    arrived = letters.record(conn, "coverage_arrived", {"arrivals": [
        {"interest_id": i, "status": "live", "available_from": None}
        for i in (told, unconfirmed, forgotten)]})
    assert fan_out(conn, arrived) == 1  # only the confirmed address
    answered = feedback(conn, 1, confirmed=True, answer="Fixed, thank you.")
    assert fan_out(conn, letters.record(conn, "feedback_answered", {"feedback_id": answered})) == 1
    waiting = feedback(conn, 2, confirmed=False)
    assert fan_out(conn, letters.record(conn, "feedback_answered", {"feedback_id": waiting})) == 0
    assert fan_out(conn, letters.record(conn, "feedback_confirm", {"feedback_id": waiting})) == 1
    with pytest.raises(ValueError):
        letters.record(conn, "opened", {})
    rows = letters.claim(conn, "w1", T0)
    assert [(r["kind"], r["address"], r["lang"]) for r in rows] == [
        ("interest_confirm", "bob@example.org", "en"), ("coverage_arrived", "ann@example.org", "en"),
        ("feedback_answered", "fb1@example.org", "ru"), ("feedback_confirm", "fb2@example.org", "ru")]
    assert rows[1]["interest_id"] == told and rows[1]["feedback_id"] is None
    assert json.loads(rows[1]["payload"])["arrivals"][0]["interest_id"] == told
    assert (rows[2]["answer"], rows[2]["token"], rows[2]["town"]) == ("Fixed, thank you.", "ftoken1", "pskov")
    assert rows[0]["token"] == "itoken2" and rows[0]["answer"] is None


def test_letters_are_marked_retried_and_recovered_like_deliveries(conn):
    people = [interest(conn, n, email=f"p{n}@example.org", confirmed=True) for n in range(4)]
    fan_out(conn, letters.record(conn, "coverage_arrived", {"arrivals": [
        {"interest_id": i, "status": "live", "available_from": None} for i in people]}), now_ts=T0)
    assert letters.next_due(conn) == T0
    a, b, c = (r["id"] for r in letters.claim(conn, "w1", T0, limit=3))
    [d] = [r["id"] for r in letters.claim(conn, DEAD, T0)]
    assert letters.claim(conn, "w1", T0) == [] and letters.next_due(conn) is None
    letters.mark_sent(conn, a, T0 + 1)
    letters.mark_retry(conn, {"id": b}, T0 + 1, "421 busy", first_s=60)
    letters.mark_failed(conn, c, "550 no such user")
    assert row_of(conn, "letters", a) == {"state": "sent", "attempts": 1, "due_at": T0, "claimed_by": None,
                                          "claimed_until": None, "sent_at": T0 + 1, "error": None}
    assert row_of(conn, "letters", b) == {"state": "pending", "attempts": 1, "due_at": T0 + 61,
                                          "claimed_by": None, "claimed_until": None, "sent_at": None,
                                          "error": "421 busy"}
    assert row_of(conn, "letters", c)["state"] == "failed"
    assert letters.recover(conn, T0 + 2) == 1  # the dead worker's letter, at once
    assert row_of(conn, "letters", d)["state"] == "pending" and letters.next_due(conn) == T0 + 2
    execute(conn, "UPDATE letters SET attempts = ? WHERE id = ?", deliveries.MAX_ATTEMPTS, b)
    letters.mark_retry(conn, {"id": b}, T0 + 100, "421 busy", first_s=60)
    assert row_of(conn, "letters", b)["state"] == "failed"
    letters.mark_retry(conn, {"id": 10 ** 9}, T0, "421 busy", first_s=60)  # gone meanwhile: nothing to do


def test_towns_for_messages_are_the_live_layers(conn):
    towns = letters._towns(conn)
    assert towns and all(len(names) == 2 for names in towns.values())
    assert worker._towns(conn) == towns


def test_forget_old_deletes_what_is_done_and_old(conn):
    now = T0 + 40 * 86400
    old, recent = T0, now - 86400
    s = subscription(conn, 1)
    kept_event, old_event, orphan_event = event(conn, state="done"), event(conn, state="done"), \
        event(conn, state="done")
    fresh_event = event(conn, created_at=old)  # still pending: kept whatever its age
    sent_old = delivery(conn, old_event, s, old)
    execute(conn, "UPDATE deliveries SET state = 'sent', sent_at = ? WHERE id = ?", old, sent_old)
    sent_recent = delivery(conn, kept_event, s, old)
    execute(conn, "UPDATE deliveries SET state = 'sent', sent_at = ? WHERE id = ?", recent, sent_recent)
    pending_old = delivery(conn, fresh_event, s, old)
    person = interest(conn, 1, email="ann@example.org", confirmed=True)
    letter_event = letters.record(conn, "interest_confirm", {"interest_id": person})
    execute(conn, "UPDATE outbox SET created_at = ?, state = 'done' WHERE id = ?", old, letter_event)
    fan_out(conn, letter_event, now_ts=old)
    execute(conn, "UPDATE letters SET state = 'failed'")
    execute(conn, 'INSERT INTO rate_counts (key, "window", count) VALUES (?, ?, 1), (?, ?, 1)',
            "old", int(now) - 3 * 86400, "new", int(now) - 3600)
    worker.forget_old(conn, now)
    left = {r[0] for r in execute(conn, "SELECT id FROM deliveries")}
    assert left == {sent_recent, pending_old}
    assert execute(conn, "SELECT count(*) FROM letters").fetchone()[0] == 0
    events = {r[0] for r in execute(conn, "SELECT id FROM outbox")}
    assert {kept_event, fresh_event} <= events
    assert not {old_event, orphan_event, letter_event} & events
    assert [r[0] for r in execute(conn, "SELECT key FROM rate_counts")] == ["new"]


def test_the_next_event_is_due_after_its_fold_for_updates(conn):
    statement = worker._statements().event_due
    assert sql.scalar(conn, statement, fold_s=60) is None
    event(conn, "updated", created_at=T0)
    assert sql.scalar(conn, statement, fold_s=60) == T0 + 60
    event(conn, "opened", created_at=T0 + 30)
    assert sql.scalar(conn, statement, fold_s=60) == T0 + 30
    event(conn, "opened", created_at=T0 - 30, state="done")
    assert sql.scalar(conn, statement, fold_s=60) == T0 + 30


def test_letters_are_sent_once_with_a_stable_message_id(conn, tmp_path):
    settings = settings_for(tmp_path / "portal.sqlite")  # Maildir beside it: the database is ``conn``'s
    person = interest(conn, 1, email="ann@example.org", confirmed=True)
    arrived = letters.record(conn, "coverage_arrived", {"arrivals": [
        {"interest_id": person, "status": "live", "available_from": None}]})
    fan_out(conn, arrived, now_ts=T0)
    assert letters.deliver_due(conn, settings, "w1") == {"sent": 1, "retry": 0, "failed": 0}
    assert letters.deliver_due(conn, settings, "w1") == {"sent": 0, "retry": 0, "failed": 0}
    [sent] = list(mailbox.Maildir(str(settings.maildir), create=False))
    assert sent["To"] == "ann@example.org"
    assert sent["Message-ID"] == f"<e{arrived}.i{person}.notify@{settings.mail_domain}>"
    assert execute(conn, "SELECT state FROM letters").fetchone()[0] == "sent"


def test_the_worker_sends_due_deliveries_once(conn, tmp_path):
    settings = settings_for(tmp_path / "portal.sqlite")  # Maildir beside it: the database is ``conn``'s
    subs = [subscription(conn, n) for n in range(2)]
    events = [event(conn, "confirm") for _ in subs]
    for e, s in zip(events, subs):
        delivery(conn, e, s, T0)
    counts = worker.deliver_due(conn, settings, "w1")
    assert counts == {"sent": 2, "retry": 0, "failed": 0}
    assert worker.deliver_due(conn, settings, "w1") == {"sent": 0, "retry": 0, "failed": 0}
    sent = list(mailbox.Maildir(str(settings.maildir), create=False))
    assert {m["Message-ID"] for m in sent} == {messages.message_id(e, s, settings.mail_domain)
                                              for e, s in zip(events, subs)}
    assert deliveries.status(conn, T0)["deliveries"] == {"pending": 0, "sending": 0, "sent": 2, "failed": 0}
