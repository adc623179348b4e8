"""Staff are told of a drafted incident, and reporters of its end: real SMTP server (aiosmtpd), real
worker processes (scripts/notify.py run), the real staff script, the app on a real database.

The issue's "done when": forty people in Pskov tap "no internet" within ten minutes, each sees the
count grow; staff get a draft with its count and confirm it from the shell; it is public on the
next request, and every reporter who asked to be told is told when it is resolved.
"""

from __future__ import annotations

import re
import time
from contextlib import closing

import pytest
from mailserver import (
    INCIDENT,
    SmtpServer,
    body,
    link,
    run_script,
    start_worker,
    stop_worker,
    subject,
    worker_env,
)

from portal import create_app
from portal.data import statements
from portal.listening import messages
from tests.conftest import DEMO_NOW

STAFF = "noc@example.org"
REPORTERS = [f"r{n}@example.org" for n in range(3)]


@pytest.fixture
def app(db_target):
    """The app on the test's own copy of the demo database, on SQLite and on PostgreSQL."""
    return create_app(
        {
            "DATABASE": str(db_target),
            "NOW": DEMO_NOW,
            "TESTING": True,
            "TRUSTED_PROXY_HOPS": 1,
            "BASE_URL": "https://portal.example",
        }
    )


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def tap(app, n, **extra):
    """Reporter ``n`` taps "no internet" in Pskov from their own network; return the JSON answer."""
    answer = app.test_client().post(
        "/api/v1/reports",
        json={"service": "internet", "town": "pskov", **extra},
        headers={"X-Forwarded-For": f"10.{n}.3.{n}"},
    )
    assert answer.status_code == 202, answer.json
    return answer.json


def staff(target, env, *args) -> str:
    """Run scripts/incident.py as staff do (on a path or a postgresql:// URL); return its last line."""
    done = run_script(INCIDENT, *args, "--db", target, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def wait_until(found, timeout=30.0):
    """Wait until ``found()`` returns something true; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("waited in vain")


def test_forty_in_pskov_staff_told_confirm_public_and_reporters_told_of_the_end(app, db_target, smtp):
    env = worker_env(smtp.url, PORTAL_STAFF_EMAIL=STAFF)
    worker = start_worker(db_target, env)
    try:
        seen = [
            tap(app, n, **({"email": REPORTERS[n], "lang": "en"} if n < 3 else {}))["last_hour"]
            for n in range(40)
        ]
        assert seen == list(range(1, 41))  # each sees the count grow

        # Each reporter who left an address confirms it (double opt-in) from the e-mailed link.
        for address in REPORTERS:
            [confirmation] = wait_until(lambda a=address: smtp.inbox.to(a))
            assert app.test_client().get(link(confirmation, "confirm")).status_code == 200

        # Staff's notice: the place, the service, distinct reporters, the usual level, the commands.
        [notice] = wait_until(lambda: smtp.inbox.to(STAFF))
        text = body(notice)
        draft_id = int(re.search(r"incident\.py confirm (\d+)", text).group(1))
        assert f"Draft incident {draft_id}" in subject(notice) or f"{draft_id}" in subject(notice)
        reporters = int(re.search(r"\((?:distinct|разных)\): (\d+)", text).group(1))
        assert 10 <= reporters <= 40
        assert "Pskov" in subject(notice) or "Псков" in subject(notice)
        assert f"incident.py dismiss {draft_id} --reason" in text
        assert "List-Unsubscribe" not in notice
        assert "10.3.3.3" not in text  # no client address

        before = app.test_client().get("/api/v1/incidents?town=pskov&status=all").json["incidents"]
        assert all("reported by customers" not in i["title"] for i in before)  # a draft is not public
        incident_id = int(staff(db_target, env, "confirm", draft_id))
        # Public on the next request, with how many reported it.
        listed = app.test_client().get("/api/v1/incidents?town=pskov&service=internet").json["incidents"]
        assert incident_id in [i["id"] for i in listed]
        detail = app.test_client().get(f"/api/v1/incidents/{incident_id}").json
        assert detail["reported"] == 40
        assert tap(app, 50)["incident"]["id"] == incident_id

        # Reporters who confirmed their address are told the incident is now known.
        for address in REPORTERS:
            wait_until(lambda a=address: [m for m in smtp.inbox.to(a) if f"/incidents/{incident_id}" in body(m)])

        staff(db_target, env, "resolve", incident_id,
              "--message", "The cabinet on Oktyabrsky has power again")
        for address in REPORTERS:
            told = wait_until(
                lambda a=address: [m for m in smtp.inbox.to(a) if subject(m).startswith("Resolved")]
            )
            assert f"/incidents/{incident_id}" in body(told[0])
        time.sleep(1.5)  # anything sent twice would have arrived by now
    finally:
        stop_worker(worker)
    assert len(smtp.inbox.to(STAFF)) == 1  # told once
    ids = [m["Message-ID"] for m in smtp.inbox.messages]
    assert len(ids) == len(set(ids))


def test_staff_notice_survives_a_killed_worker_and_is_sent_once(app, db_target, smtp):
    staff_env = worker_env(smtp.url, PORTAL_STAFF_EMAIL=f"{STAFF}, duty@example.org")
    for n in range(12):
        tap(app, n)  # no worker yet: the notice waits in the outbox
    with closing(statements.connect(db_target)) as conn:
        [(event_id, kind)] = [
            tuple(row) for row in conn.execute("SELECT id, kind FROM outbox WHERE kind = 'draft_opened'")
        ]
    smtp.inbox.hold_at(1)  # the first notice waits inside DATA; the worker is killed there
    first = start_worker(db_target, staff_env)
    try:
        assert smtp.inbox.held.wait(30)
    finally:
        stop_worker(first, kill=True)
    smtp.inbox.release()
    second = start_worker(db_target, staff_env)
    try:
        wait_until(lambda: len(smtp.inbox.messages) >= 2)
        time.sleep(1.5)
    finally:
        stop_worker(second)
    got = sorted((m["To"], m["Message-ID"]) for m in smtp.inbox.messages)
    assert [to for to, _ in got] == ["duty@example.org", STAFF]
    with closing(statements.connect(db_target)) as conn:
        staff_rows = conn.execute("SELECT address, id FROM subscriptions WHERE staff <> 0")
        ids = dict(tuple(row) for row in staff_rows)
        assert (
            conn.execute(
                "SELECT count(*) FROM subscriptions WHERE staff <> 0 AND confirmed_at IS NULL"
            ).fetchone()[0]
            == 0
        )
    assert {mid for _, mid in got} == {messages.message_id(event_id, ids[a], "localhost") for a in ids}
    assert all("12" in body(m) for m in smtp.inbox.messages)
    # Staff recipients are not subscribers: the public counts never show them.
    counts = run_script(INCIDENT.parent / "subscribers.py", "counts", "--db", db_target, env=staff_env)
    assert STAFF not in counts.stdout and "staff" not in counts.stdout


def test_a_staff_webhook_gets_the_draft_as_json(app, db_target):
    from mailserver import WebhookReceiver

    hook = WebhookReceiver()
    env = worker_env(None, PORTAL_STAFF_WEBHOOK=hook.url, PORTAL_WEBHOOK_ALLOW_PRIVATE="1")
    try:
        for n in range(10):
            tap(app, n)
        done = run_script(INCIDENT.parent / "notify.py", "run", "--once", "--db", db_target, env=env)
        assert done.returncode == 0, done.stderr
        [got] = hook.received
        assert got["json"]["type"] == "draft.opened"
        draft = got["json"]["draft"]
        assert (draft["town"], draft["service"], draft["reporters"], draft["usual"]) == (
            "pskov",
            "internet",
            10,
            0,
        )
        assert got["json"]["commands"]["confirm"] == f"python scripts/incident.py confirm {draft['id']}"
    finally:
        hook.stop()
