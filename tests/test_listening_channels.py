"""Webhooks (signed JSON POSTs, private addresses refused unless allowed) and the Redis-backed queue
and rate limits, with a real redis-server started on a private socket."""
from __future__ import annotations

import sqlite3
import time

import pytest
from listening_tools import settings_for, states, towns_db
from mailserver import (
    INCIDENT,
    NOTIFY,
    SmtpServer,
    WebhookReceiver,
    body,
    link,
    redis_server,
    run_script,
    start_worker,
    stop_worker,
    worker_env,
)

from portal import create_app
from portal.incidents import writes
from portal.listening import webhooks, worker


@pytest.fixture
def receiver():
    """Give a webhook receiver on 127.0.0.1."""
    found = WebhookReceiver()
    yield found
    found.stop()


def test_webhooks_to_loopback_are_refused_unless_allowed(db_path, receiver):
    strict = create_app({"DATABASE": str(db_path), "TESTING": True}).test_client()
    refused = strict.post("/api/v1/subscriptions", json={"webhook": receiver.url, "town": "pechory",
                                                         "services": ["internet"]})
    assert refused.status_code == 400 and refused.json["field"] == "webhook"
    assert "loopback" in refused.json["error"]
    for url in ("http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x"):
        with pytest.raises(webhooks.WebhookRefused):
            webhooks.check_url(url)


def test_a_webhook_is_confirmed_then_gets_signed_events(tmp_path, receiver):
    db_path = towns_db(tmp_path / "portal.sqlite")
    app = create_app({"DATABASE": str(db_path), "TESTING": True, "WEBHOOK_ALLOW_PRIVATE": True})
    client = app.test_client()
    answer = client.post("/api/v1/subscriptions", json={"webhook": receiver.url, "town": "alpha",
                                                        "services": ["internet"], "lang": "en"})
    assert answer.status_code == 202 and answer.json["status"] == "pending"
    secret = answer.json["secret"]
    settings = settings_for(db_path, WEBHOOK_ALLOW_PRIVATE=True)
    worker.run_once(settings)
    [confirm] = receiver.received
    assert confirm["json"]["type"] == "subscription.confirm"
    assert webhooks.verify(secret, confirm["headers"]["X-Portal-Signature"], confirm["raw"])
    assert not webhooks.verify("wrong", confirm["headers"]["X-Portal-Signature"], confirm["raw"])
    path = confirm["json"]["confirm_url"].removeprefix("https://portal.example")
    assert client.get(path).status_code == 200

    incident = writes.open_incident(db_path, title="No internet", services=["internet"], towns=["alpha"],
                                    author="anna")
    worker.run_once(settings)
    event = receiver.received[-1]
    assert event["json"]["type"] == "incident.opened" and event["json"]["incident"]["id"] == incident
    assert webhooks.verify(secret, event["headers"]["X-Portal-Signature"], event["raw"])
    assert event["headers"]["X-Portal-Delivery"].startswith("e")

    # A receiver that answers 500 is tried again later; one that answers 410 Gone ends the subscription.
    receiver.status[0] = 500
    writes.update_incident(db_path, incident, status="identified", message="Cable cut", author="anna")
    time.sleep(1.1)
    worker.run_once(settings)
    assert states(db_path).get("pending") == 1
    receiver.status[0] = 410
    time.sleep(1.1)
    worker.run_once(settings)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 0


@pytest.fixture
def redis_url(tmp_path):
    """Start Debian's redis-server on a private Unix socket; give its URL."""
    with redis_server(tmp_path) as url:
        yield url


def test_queue_and_rate_limits_in_redis(db_path, redis_url):
    import redis

    smtp = SmtpServer().start()
    env = worker_env(smtp.url, PORTAL_REDIS_URL=redis_url)
    proc = start_worker(db_path, env)
    try:
        app = create_app({"DATABASE": str(db_path), "TESTING": True, "REDIS_URL": redis_url})
        client = app.test_client()
        answer = client.post("/api/v1/subscriptions", json={"email": "vera@example.org", "town": "pechory",
                                                            "services": ["internet"], "lang": "en"})
        assert answer.status_code == 202
        [confirmation] = smtp.inbox.wait_for(1)
        assert client.get(link(confirmation, "confirm")).status_code == 200
        opened = run_script(INCIDENT, "open", "--db", db_path, "--title", "Fiber cut", "--service", "internet",
                            "--town", "pechory", env=env)
        assert opened.returncode == 0, opened.stderr
        incident = opened.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(f"/incidents/{incident}" in body(m)
                                                      for m in smtp.inbox.to("vera@example.org")):
            time.sleep(0.05)
        assert any(f"/incidents/{incident}" in body(m) for m in smtp.inbox.to("vera@example.org"))
        keys = redis.Redis.from_url(redis_url).keys("portal:rate:*")
        assert keys and not any(b"@" in k for k in keys)
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM rate_counts").fetchone()[0] == 0
        assert not (db_path.parent / f"{db_path.stem}-queue.sqlite").exists()
    finally:
        stop_worker(proc)
        smtp.stop()


def test_notify_script_help_and_a_bad_smtp_url(db_path):
    for command in ("run", "status"):
        helped = run_script(NOTIFY, command, "--help")
        assert "Example:" in helped.stdout and "python scripts/notify.py" in helped.stdout
    bad = run_script(NOTIFY, "run", "--once", "--db", db_path,
                     env=worker_env("mail.example.org:25"))
    assert bad.returncode == 2 and "SMTP_URL" in bad.stderr

