"""Delivery that loses nothing: the mail server down then back, the worker killed mid-batch, retries,
folding bursts, who is reached (in and outside the place), periodic events. Real SMTP server
(aiosmtpd), real worker processes (scripts/notify.py). Every test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import mailbox
import secrets
import time
from contextlib import closing
from datetime import timedelta

import pytest
from enginetools import engine_copy
from listening_tools import BUILDING, settings_for, towns_db
from mailserver import NOTIFY, SmtpServer, body, run_script, start_worker, stop_worker, subject, worker_env

from portal.data import db
from portal.data import statements as sql
from portal.incidents import writes
from portal.listening import deliveries, messages, store, worker
from portal.listening.cells import cell_of
from portal.listening.schema import SERVICE_BITS


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """A database of two hand-made towns and no incidents, made once."""
    return towns_db(tmp_path_factory.mktemp("towns") / "portal.sqlite")


@pytest.fixture
def db_path(engine, towns_template, tmp_path, request):
    """Give the test its own copy of it on the engine under test: a path, or a postgresql:// URL."""
    return engine_copy(engine, towns_template, tmp_path, request)


@pytest.fixture
def settings(db_path, tmp_path):
    """Listening settings for the test's database, its Maildir in the test's folder on either engine."""
    return settings_for(db_path, MAILDIR=str(tmp_path / "mail"))


def execute(conn, text: str, *values):
    """Run plain SQL with ``?`` placeholders on either engine's driver."""
    if sql.dialect_of(conn) == sql.POSTGRESQL:
        text = text.replace("?", "%s")
    return conn.execute(text, values)


def add_subscriber(target, address, *, town=None, point=None, services=("internet",), lang="en") -> dict:
    """Insert one confirmed e-mail subscription directly (on either engine); return its id and token."""
    token = secrets.token_urlsafe(24)
    cell = lat = lon = None
    if point is not None:
        cell, lat, lon = cell_of(*point)
    mask = sum(SERVICE_BITS[s] for s in services)
    now = db.iso(db.utcnow())
    with closing(sql.connect(target)) as conn:
        row = execute(conn, "INSERT INTO subscriptions (channel, address, secret, token, town, cell, lat, lon,"
                      " services, lang, created_at, confirmed_at) VALUES ('email', ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                      " RETURNING id", address, token, town, cell, lat, lon, mask, lang, now, now).fetchone()
    return {"id": row[0], "token": token}


def states(target) -> dict:
    """Return the number of deliveries per state."""
    with closing(sql.connect(target)) as conn:
        return dict(tuple(r) for r in conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state"))


def column(target, text: str, *values):
    """Return the first column of every row of a query."""
    with closing(sql.connect(target)) as conn:
        return [r[0] for r in execute(conn, text, *values).fetchall()]


def open_in_alpha(db_path, **kwargs) -> int:
    """Open an internet outage listing Alpha; return its id."""
    return writes.open_incident(db_path, title="No internet", services=["internet"], towns=["alpha"],
                                author="anna", **kwargs)


def maildir(settings) -> list:
    """Return the messages the Maildir channel wrote."""
    return list(mailbox.Maildir(str(settings.maildir), create=False))


def test_mail_server_down_then_back_delivers_exactly_once(db_path):
    people = [f"p{n}@example.org" for n in range(3)]
    for address in people:
        add_subscriber(db_path, address, town="alpha")
    server = SmtpServer()  # its port is known, nothing listens there yet
    env = worker_env(server.url)
    incident = open_in_alpha(db_path)

    down = run_script(NOTIFY, "run", "--once", "--db", str(db_path), env=env)
    assert down.returncode == 0, down.stderr
    assert "sent 0, to retry 3" in down.stdout
    status = run_script(NOTIFY, "status", "--db", str(db_path), env=env)
    assert "waiting to retry: 3" in status.stdout
    waits = [due - time.time() for due in column(db_path, "SELECT due_at FROM deliveries")]
    assert all(w <= 120 for w in waits)  # due again within two minutes

    server.start()
    try:
        time.sleep(1.2)  # the first retry is due after PORTAL_NOTIFY_RETRY_SECONDS (1 s here)
        back = run_script(NOTIFY, "run", "--once", "--db", str(db_path), env=env)
        assert "sent 3," in back.stdout, back.stdout + back.stderr
        again = run_script(NOTIFY, "run", "--once", "--db", str(db_path), env=env)
        assert "sent 0," in again.stdout
        received = server.inbox.wait_for(3)
        time.sleep(0.3)
        assert len(server.inbox.messages) == 3
        assert sorted(m["To"] for m in received) == people
        assert all(f"/incidents/{incident}" in body(m) for m in received)
        assert len({m["Message-ID"] for m in received}) == 3
        assert states(db_path) == {"sent": 3}
    finally:
        server.stop()


def test_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(db_path):
    subs = [add_subscriber(db_path, f"p{n:02d}@example.org", town="alpha") for n in range(60)]
    server = SmtpServer().start()
    # The 25th message waits inside DATA, before the server accepts it: the worker is killed there.
    server.inbox.hold_at(25)
    env = worker_env(server.url)
    try:
        incident = open_in_alpha(db_path)
        first = start_worker(db_path, env)
        try:
            assert server.inbox.held.wait(30), "the worker never reached the 25th message"
        finally:
            stop_worker(first, kill=True)
        server.inbox.release()
        left = states(db_path)
        assert left.get("sent", 0) >= 24 and left.get("sending", 0) >= 1  # killed with a batch in hand

        second = start_worker(db_path, env)
        try:
            server.inbox.wait_for(60)
            time.sleep(1.0)
        finally:
            stop_worker(second)
        [event] = column(db_path, "SELECT id FROM outbox WHERE incident_id = ?", incident)
        ids = [m["Message-ID"] for m in server.inbox.messages]
        expected = {messages.message_id(event, s["id"], "localhost") for s in subs}
        assert len(ids) == 60 and set(ids) == expected  # every one, and none twice
        assert states(db_path) == {"sent": 60}
    finally:
        server.stop()


def test_a_claim_left_by_a_dead_worker_is_sent_again_with_the_same_message_id(db_path, settings):
    sub = add_subscriber(db_path, "vera@example.org", town="alpha")
    open_in_alpha(db_path)
    conn = store.connect(db_path)
    try:
        worker.fan_out_due(conn, settings)
        # A worker on this machine whose process is gone (pid 2**22 + 1 is beyond the pid range).
        [row] = deliveries.claim(conn, "%s:%d:0" % (deliveries.worker_id().split(":")[0], 2 ** 22 + 1), time.time())
        assert deliveries.recover(conn, time.time()) == 1
    finally:
        conn.close()
    worker.run_once(settings)
    [sent] = maildir(settings)
    assert sent["Message-ID"] == messages.message_id(row["event_id"], sub["id"], settings.mail_domain)


def test_who_is_reached_in_and_outside_the_place(db_path, settings):
    reached = [
        add_subscriber(db_path, "town@example.org", town="alpha"),
        add_subscriber(db_path, "inside@example.org", point=(60.05, 30.05)),
        add_subscriber(db_path, "both@example.org", town="alpha", services=("internet", "tv")),
    ]
    add_subscriber(db_path, "street@example.org", point=(60.09, 30.09))  # in Alpha, outside the building
    add_subscriber(db_path, "beta@example.org", town="beta")
    add_subscriber(db_path, "tv-only@example.org", town="alpha", services=("tv",))
    writes.open_incident(db_path, title="Building cut off", services=["internet"], area=BUILDING, author="anna")
    worker.run_once(settings)
    assert sorted(m["To"] for m in maildir(settings)) == sorted(
        ["town@example.org", "inside@example.org", "both@example.org"])
    assert len(reached) == 3


def test_a_burst_of_updates_within_the_fold_is_one_message(db_path, settings):
    add_subscriber(db_path, "vera@example.org", town="alpha", lang="ru")
    incident = open_in_alpha(db_path)
    worker.run_once(settings)
    writes.update_incident(db_path, incident, status="identified", message="Cable cut", author="anna")
    writes.update_incident(db_path, incident, status="monitoring", message="Spliced, watching", author="anna")
    worker.run_once(settings)
    assert len(maildir(settings)) == 1  # the updates wait for the fold (1 s here)
    time.sleep(1.1)
    worker.run_once(settings)
    found = sorted(maildir(settings), key=lambda m: int(m["Message-ID"][2:].split(".")[0]))
    assert len(found) == 2
    text = body(found[-1])
    assert "Spliced, watching" in text and "Cable cut" in text and "Предыдущие новости" in text
    assert "Наблюдаем" in subject(found[-1])


def test_resolving_within_the_fold_sends_the_resolution_only(db_path, settings):
    add_subscriber(db_path, "vera@example.org", town="alpha")
    incident = open_in_alpha(db_path)
    worker.run_once(settings)
    writes.update_incident(db_path, incident, status="identified", message="Cable cut", author="anna")
    writes.resolve_incident(db_path, incident, message="Fixed", author="anna")
    worker.run_once(settings)
    subjects = sorted(subject(m) for m in maildir(settings))
    assert subjects == ["Alpha: Outage — No internet", "Resolved: No internet"]


def test_deadline_passed_and_maintenance_started_are_sent_once(db_path, settings):
    add_subscriber(db_path, "vera@example.org", town="alpha", services=("internet", "tv"))
    now = db.utcnow()
    open_in_alpha(db_path, at=now - timedelta(hours=30))
    writes.schedule_maintenance(db_path, title="Node upgrade", services=["tv"], towns=["alpha"], author="anna",
                                start=now + timedelta(hours=1), end=now + timedelta(hours=3))
    worker.run_once(settings)  # its check finds the internet deadline (24 h) passed 6 h ago
    assert len(maildir(settings)) == 3  # opened, announced, deadline passed
    worker.tick(settings, now + timedelta(minutes=1))
    worker.tick(settings, now + timedelta(minutes=2))
    worker.run_once(settings)
    deadline = [m for m in maildir(settings) if subject(m).startswith("Restoration deadline passed")]
    assert len(deadline) == 1 and "within 24 hours" in body(deadline[0])
    worker.tick(settings, now + timedelta(minutes=61))
    worker.tick(settings, now + timedelta(minutes=62))
    worker.run_once(settings)
    started = [m for m in maildir(settings) if "maintenance has started" in subject(m)]
    assert len(started) == 1
    assert len(maildir(settings)) == 4


def test_a_staff_write_that_fails_records_no_event(db_path):
    add_subscriber(db_path, "vera@example.org", town="alpha")
    with pytest.raises(writes.IncidentError):
        writes.open_incident(db_path, title="x", services=["internet"], towns=["nowhere"], author="anna")
    assert column(db_path, "SELECT count(*) FROM outbox") == [0]
