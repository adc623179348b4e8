"""Two portal nodes on one PostgreSQL and one Redis, with nginx in front (docs/deploy.md, several machines).

Each node is gunicorn as deployed (``docs/gunicorn.conf.py``, its own port), each with its own
notification worker (``scripts/notify.py run``); PostgreSQL (a private PostGIS cluster) holds
the data, Redis the queue and the rate limits, an aiosmtpd server takes the mail. What a
provider running several nodes needs to hold:

- a staff write made with the scripts shows on every node's next request;
- a subscription made on node A is delivered by a worker, exactly once, while both nodes'
  workers run;
- killing node A under load costs no request: nginx tries node B.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mailserver import BASE_URL, INCIDENT, NOTIFY, SmtpServer, link, redis_server, run_script, subject

from benchmarks import load

ROOT = Path(__file__).resolve().parent.parent
# Pskov's centre and points around it: answers nginx has not cached.
PSKOV = (57.8136, 28.3496)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """Start Debian's redis-server for the module; give its URL."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def database(pg_server, pg_demo_template) -> str:
    """One PostgreSQL copy of the demo portal shared by both nodes; its URL."""
    import psycopg

    with psycopg.connect(f"host={pg_server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE portal_two_nodes TEMPLATE {pg_demo_template}")
    return f"postgresql://bench@/portal_two_nodes?host={pg_server}"


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def _env(database: str, redis_url: str, smtp_url: str, **extra) -> dict:
    env = {**os.environ, "PORTAL_DB": database, "PORTAL_REDIS_URL": redis_url, "PORTAL_SMTP_URL": smtp_url,
           "PORTAL_BASE_URL": BASE_URL, "PORTAL_NOTIFY_FOLD_SECONDS": "1", "PORTAL_NOTIFY_RETRY_SECONDS": "1",
           "PORTAL_AUTHOR": "anna", "PORTAL_TRUSTED_PROXY_HOPS": "1", "PYTHONPATH": str(ROOT)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Node:
    """One portal node: gunicorn on its own port (in its own process group, to be killed whole), and a worker."""

    def __init__(self, name: str, env: dict, folder: Path):
        self.name, self.env, self.port = name, env, load.free_port()
        self.log = open(folder / f"{name}.log", "w")  # noqa: SIM115 -- closed in stop()
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "docs" / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT, env={**env, "PORTAL_BIND": f"127.0.0.1:{self.port}", "PORTAL_WORKERS": "2"},
            stdout=self.log, stderr=self.log, start_new_session=True)
        self.worker = None
        load._wait_http(f"{self.base}/api/v1/summary", timeout=180)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([sys.executable, str(NOTIFY), "run", "--db", self.env["PORTAL_DB"],
                                        "--workers", "1"], env=self.env, cwd=ROOT,
                                       stdout=self.log, stderr=self.log, start_new_session=True)

    def kill(self) -> None:
        """Kill the node's web server whole (master and workers), as a machine dying would."""
        if self.web.poll() is None:
            os.killpg(self.web.pid, signal.SIGKILL)
            self.web.wait(timeout=30)

    def stop(self) -> None:
        for proc in (self.worker, self.web):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def nodes(database, redis_url, smtp, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nodes")
    env = _env(database, redis_url, smtp.url)
    started = []
    try:
        for name in ("a", "b"):
            started.append(Node(name, env, folder))
        yield started
    finally:
        for node in started:
            node.stop()


def _get(url: str, **headers) -> tuple[int, dict]:
    import json

    status, _headers, body = load.fetch(url, headers or None)
    return status, json.loads(body) if body[:1] in (b"{", b"[") else {}


def _post(url: str, body: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-Forwarded-For": "10.9.8.7"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_a_staff_write_shows_on_the_other_node_at_its_next_request(nodes, database):
    a, b = nodes
    before = _get(f"{b.base}/api/v1/status?town=pskov&lang=en")[1]
    assert not any(i["title"] == "Fibre cut on Rizhsky prospekt" for i in before["incidents"])
    done = run_script(INCIDENT, "open", "--db", database, "--title", "Fibre cut on Rizhsky prospekt",
                      "--town", "pskov", "--service", "internet", "--message", "Crews are on site.",
                      env=a.env)
    assert done.returncode == 0, done.stderr
    for node in (b, a):  # no restart, no wait: the next request of each node
        status, found = _get(f"{node.base}/api/v1/status?town=pskov&lang=en")
        assert status == 200
        assert any(i["title"] == "Fibre cut on Rizhsky prospekt" for i in found["incidents"]), node.name


def test_a_subscription_made_on_node_a_is_delivered_once_by_a_worker_of_node_b(nodes, smtp):
    a, b = nodes
    b.start_worker()  # only node B's worker runs: node A's web answers, node B's worker delivers
    status, answer = _post(f"{a.base}/api/v1/subscriptions", {"email": "two-nodes@example.org",
                                                              "town": "pskov", "services": ["internet"],
                                                              "lang": "en"})
    assert (status, answer["status"]) == (202, "pending")
    (letter,) = smtp.inbox.wait_for(1, timeout=60)
    assert letter["To"] == "two-nodes@example.org"
    # Confirmed on node B; then node A's worker starts too: two workers, one queue in Redis.
    confirm = link(letter, "confirm")
    assert load.fetch(f"{b.base}{confirm}")[0] == 200
    a.start_worker()
    done = run_script(INCIDENT, "open", "--db", a.env["PORTAL_DB"], "--title", "Internet down in Zavelichye",
                      "--town", "pskov", "--service", "internet", "--message", "We are on it.", env=a.env)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not _told(smtp):
        time.sleep(0.5)
    time.sleep(5)  # time enough for a second worker's duplicate, were there one
    assert _told(smtp) == 1, [subject(m) for m in smtp.inbox.to("two-nodes@example.org")]


def _told(smtp) -> int:
    """Return how many letters about the new incident the subscriber got."""
    return sum("Internet down in Zavelichye" in subject(m) for m in smtp.inbox.to("two-nodes@example.org"))


def test_one_node_killed_under_load_costs_no_request(nodes):
    a, b = nodes
    paths = [f"/api/v1/check?lat={PSKOV[0] + k * 1e-4:.5f}&lon={PSKOV[1] + (k % 37) * 1e-4:.5f}"
             for k in range(3000)]
    with load.nginx([a.port, b.port]) as (front, access_log):
        assert load.fetch(f"{front}/api/v1/summary")[0] == 200
        killer = threading.Timer(2.0, a.kill)
        killer.start()
        found = load.wrk(front, paths, 6, connections=16)
        killer.join()
    assert a.web.poll() is not None  # node A really is gone
    assert found["requests"] > 500
    assert (found["errors"], found["non2xx"]) == (0, 0), found
    # Node B answered through it all, and still does.
    assert load.fetch(f"{b.base}/api/v1/summary")[0] == 200
