"""The issue's story with real parts: a visitor subscribes to Pechory from the town page, confirms
from the e-mail, gets one message when staff open an incident there, one for its update and one
when it is resolved, in Russian, and unsubscribes with one click. A real SMTP server (aiosmtpd),
a real worker process (scripts/notify.py run) and the real staff script."""
from __future__ import annotations

import time
from contextlib import closing

import pytest
from mailserver import (
    BASE_URL,
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

from portal.data import statements

VISITOR = "vera@example.org"


@pytest.fixture
def smtp():
    """Give a running SMTP server, stopped after the test."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def target(app):
    """The database the app under test runs on: an SQLite path or a postgresql:// URL."""
    return app.config["DATABASE"]


@pytest.fixture
def worker(target, smtp):
    """Give a worker process delivering to the test's SMTP server, on the app's own database."""
    proc = start_worker(target, worker_env(smtp.url))
    yield proc
    stop_worker(proc)


def staff(target, *args):
    """Run scripts/incident.py as staff do (on a path or a URL); return its last line (an id for open)."""
    done = run_script(INCIDENT, *args, "--db", target, env=worker_env(None))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def about(inbox, address, incident_id):
    """Return the messages to an address about one incident."""
    return [m for m in inbox.to(address) if f"/incidents/{incident_id}" in body(m)]


def wait_about(inbox, address, incident_id, count, timeout=30.0):
    """Wait until ``count`` messages about the incident reached the address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = about(inbox, address, incident_id)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{len(about(inbox, address, incident_id))} of {count} messages about #{incident_id}")


def test_subscribe_confirm_open_update_resolve_unsubscribe(client, target, smtp, worker):
    page = client.get("/towns/pechory?lang=ru")
    assert b'action="/subscriptions"' in page.data
    answer = client.post("/subscriptions", data={"town": "pechory", "services": ["internet"], "lang": "ru",
                                                 "email": VISITOR, "website": ""},
                         headers={"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 202
    assert answer.headers["Cache-Control"] == "no-store"

    [confirmation] = smtp.inbox.wait_for(1)
    assert confirmation["To"] == VISITOR
    assert "Печоры" in subject(confirmation)
    assert "List-Unsubscribe" not in confirmation  # not a notification: nothing is sent before confirming
    confirmed = client.get(link(confirmation, "confirm"))
    assert confirmed.status_code == 200 and confirmed.headers["Cache-Control"] == "no-store"

    # An incident elsewhere reaches nobody in Pechory.
    elsewhere = staff(target, "open", "--title", "Нет ТВ в Пскове", "--service", "internet", "--town", "Pskov")
    incident = staff(target, "open", "--title", "Нет интернета на ул. Ленина", "--service", "internet",
                     "--town", "Печоры", "--message", "Бригада выехала")
    [opened] = wait_about(smtp.inbox, VISITOR, incident, 1)
    assert subject(opened).startswith("Печоры: Авария")
    assert "Бригада выехала" in body(opened) and "Бригада выехала" in body(opened, "html")
    assert opened["List-Unsubscribe"] == f"<{BASE_URL}{link(opened, 'unsubscribe')}>"
    assert opened["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert opened["Content-Language"] == "ru"

    staff(target, "update", incident, "--status", "identified", "--message", "Кабель перебит экскаватором",
          "--eta", "2030-01-01T12:00")
    [_, updated] = wait_about(smtp.inbox, VISITOR, incident, 2)
    assert "Причина найдена" in subject(updated) and "Кабель перебит" in body(updated)
    staff(target, "resolve", incident, "--message", "Кабель срощен")
    [*_, resolved] = wait_about(smtp.inbox, VISITOR, incident, 3)
    assert subject(resolved).startswith("Решено") and "Кабель срощен" in body(resolved)

    time.sleep(2)  # anything more would have arrived by now (updates fold within 1 s here)
    assert len(about(smtp.inbox, VISITOR, incident)) == 3
    assert about(smtp.inbox, VISITOR, elsewhere) == []
    ids = [m["Message-ID"] for m in smtp.inbox.to(VISITOR)]
    assert len(ids) == len(set(ids))

    # One click, as a mailbox provider does it: a POST without cookies to the List-Unsubscribe URL.
    fresh = client.application.test_client()
    done = fresh.post(link(resolved, "unsubscribe"), data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200
    with closing(statements.connect(target)) as conn:
        assert VISITOR not in [row[0] for row in conn.execute("SELECT address FROM subscriptions")]
    again = staff(target, "open", "--title", "Снова нет интернета", "--service", "internet", "--town", "pechory")
    time.sleep(3)
    assert about(smtp.inbox, VISITOR, again) == []
