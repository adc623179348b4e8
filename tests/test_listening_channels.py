"""Webhooks (signed JSON POSTs, private addresses refused unless allowed) and the Redis-backed queue
and rate limits, with a real redis-server started on a private socket."""
from __future__ import annotations

import time
from contextlib import closing

import pytest
from enginetools import engine_copy
from listening_tools import settings_for, towns_db
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
from portal.data import statements
from portal.incidents import writes
from portal.listening import webhooks, worker


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """A database of two hand-made towns (Alpha and Beta) and no incidents, made once."""
    return towns_db(tmp_path_factory.mktemp("towns") / "portal.sqlite")


@pytest.fixture
def towns(engine, towns_template, tmp_path, request):
    """The test's own copy of the two towns on the engine under test: a path or a postgresql:// URL."""
    return engine_copy(engine, towns_template, tmp_path, request)


def states(target) -> dict:
    """Return the number of deliveries per state, on either engine."""
    with closing(statements.connect(target)) as conn:
        found = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {state: n for state, n in found}


def count(target, table: str) -> int:
    """Return the number of rows of a table, on either engine."""
    with closing(statements.connect(target)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def receiver():
    """Give a webhook receiver on 127.0.0.1."""
    found = WebhookReceiver()
    yield found
    found.stop()


def test_webhooks_to_loopback_are_refused_unless_allowed(db_target, receiver):
    strict = create_app({"DATABASE": str(db_target), "TESTING": True}).test_client()
    refused = strict.post("/api/v1/subscriptions", json={"webhook": receiver.url, "town": "pechory",
                                                         "services": ["internet"]})
    assert refused.status_code == 400 and refused.json["field"] == "webhook"
    assert "loopback" in refused.json["error"]
    for url in ("http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x"):
        with pytest.raises(webhooks.WebhookRefused):
            webhooks.check_url(url)


def test_a_webhook_is_confirmed_then_gets_signed_events(towns, tmp_path, receiver):
    app = create_app({"DATABASE": str(towns), "TESTING": True, "WEBHOOK_ALLOW_PRIVATE": True,
                      "MAILDIR": str(tmp_path / "mail")})
    client = app.test_client()
    answer = client.post("/api/v1/subscriptions", json={"webhook": receiver.url, "town": "alpha",
                                                        "services": ["internet"], "lang": "en"})
    assert answer.status_code == 202 and answer.json["status"] == "pending"
    secret = answer.json["secret"]
    settings = settings_for(towns, WEBHOOK_ALLOW_PRIVATE=True, MAILDIR=str(tmp_path / "mail"))
    worker.run_once(settings)
    [confirm] = receiver.received
    assert confirm["json"]["type"] == "subscription.confirm"
    assert webhooks.verify(secret, confirm["headers"]["X-Portal-Signature"], confirm["raw"])
    assert not webhooks.verify("wrong", confirm["headers"]["X-Portal-Signature"], confirm["raw"])
    path = confirm["json"]["confirm_url"].removeprefix("https://portal.example")
    assert client.get(path).status_code == 200

    incident = writes.open_incident(towns, title="No internet", services=["internet"], towns=["alpha"],
                                    author="anna")
    worker.run_once(settings)
    event = receiver.received[-1]
    assert event["json"]["type"] == "incident.opened" and event["json"]["incident"]["id"] == incident
    assert webhooks.verify(secret, event["headers"]["X-Portal-Signature"], event["raw"])
    assert event["headers"]["X-Portal-Delivery"].startswith("e")

    # A receiver that answers 500 is tried again later; one that answers 410 Gone ends the subscription.
    receiver.status[0] = 500
    writes.update_incident(towns, incident, status="identified", message="Cable cut", author="anna")
    time.sleep(1.1)
    worker.run_once(settings)
    assert states(towns).get("pending") == 1
    receiver.status[0] = 410
    time.sleep(1.1)
    worker.run_once(settings)
    assert count(towns, "subscriptions") == 0


@pytest.fixture
def redis_url(tmp_path):
    """Start Debian's redis-server on a private Unix socket; give its URL."""
    with redis_server(tmp_path) as url:
        yield url


def file_state(path) -> list:
    """Return the size and modification time of an SQLite file and its write-ahead log (None: absent)."""
    parts = (path, path.with_name(path.name + "-wal"))
    return [(part.stat().st_size, part.stat().st_mtime_ns) if part.exists() else None for part in parts]


def test_queue_and_rate_limits_in_redis(db_target, redis_url):
    import redis

    # Without Redis the queue would be an SQLite file (beside the database; in instance/ on PostgreSQL,
    # where other tests may have left one): with Redis it is neither made nor touched (on SQLite: never
    # made, the test's folder being new).
    queue_file = settings_for(db_target).queue_file
    queue_before = file_state(queue_file)
    smtp = SmtpServer().start()
    env = worker_env(smtp.url, PORTAL_REDIS_URL=redis_url)
    proc = start_worker(db_target, env)
    try:
        app = create_app({"DATABASE": str(db_target), "TESTING": True, "REDIS_URL": redis_url})
        client = app.test_client()
        answer = client.post("/api/v1/subscriptions", json={"email": "vera@example.org", "town": "pechory",
                                                            "services": ["internet"], "lang": "en"})
        assert answer.status_code == 202
        [confirmation] = smtp.inbox.wait_for(1)
        assert client.get(link(confirmation, "confirm")).status_code == 200
        opened = run_script(INCIDENT, "open", "--db", db_target, "--title", "Fiber cut",
                            "--service", "internet", "--town", "pechory", env=env)
        assert opened.returncode == 0, opened.stderr
        incident = opened.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(f"/incidents/{incident}" in body(m)
                                                      for m in smtp.inbox.to("vera@example.org")):
            time.sleep(0.05)
        assert any(f"/incidents/{incident}" in body(m) for m in smtp.inbox.to("vera@example.org"))
        keys = redis.Redis.from_url(redis_url).keys("portal:rate:*")
        assert keys and not any(b"@" in k for k in keys)
        assert count(db_target, "rate_counts") == 0
        assert file_state(queue_file) == queue_before
    finally:
        stop_worker(proc)
        smtp.stop()


def test_notify_script_help_and_a_bad_smtp_url(db_target):
    for command in ("run", "status"):
        helped = run_script(NOTIFY, command, "--help")
        assert "Example:" in helped.stdout and "python scripts/notify.py" in helped.stdout
    bad = run_script(NOTIFY, "run", "--once", "--db", db_target,
                     env=worker_env("mail.example.org:25"))
    assert bad.returncode == 2 and "SMTP_URL" in bad.stderr



def test_the_queue_file_goes_where_queue_file_says(db_target, tmp_path):
    # With the data in PostgreSQL (and no Redis) the default is the checkout's instance/ folder;
    # QUEUE_FILE puts the queue where the deployment keeps its data. Web side and worker name it alike.
    queue_file = tmp_path / "spool" / "queue.sqlite"
    default_file = settings_for(db_target).queue_file
    default_before = file_state(default_file)
    smtp = SmtpServer().start()
    proc = start_worker(db_target, worker_env(smtp.url, PORTAL_QUEUE_FILE=str(queue_file)))
    try:
        app = create_app({"DATABASE": str(db_target), "TESTING": True, "QUEUE_FILE": str(queue_file)})
        answer = app.test_client().post("/api/v1/subscriptions", json={
            "email": "vera@example.org", "town": "pechory", "services": ["internet"], "lang": "en"})
        assert answer.status_code == 202
        [confirmation] = smtp.inbox.wait_for(1)  # delivered by the worker reading the same file
        assert "confirm" in body(confirmation)
        assert queue_file.exists()
        assert file_state(default_file) == default_before
    finally:
        stop_worker(proc)
        smtp.stop()
