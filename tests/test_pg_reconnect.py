"""PostgreSQL restarted, failed over or ending idle sessions under a running portal costs no request.

The web side keeps its connections between requests (a read connection per thread, a write
connection for the crowd reports). When the server closes them, the next request must be
answered on a new connection, not with a 500 from the old one, and not on every later request.
Here the server ends every session of the portal's database (``pg_terminate_backend``: what a
restart or an administrator does) between requests, each time on real connections.
"""
from __future__ import annotations

import time
from contextlib import closing

import pytest

from portal import create_app
from portal.data import statements as sql
from tests.conftest import DEMO_NOW

PECHORY = {"lat": 57.812371, "lon": 27.614539}


def end_every_session(url: str) -> int:
    """End every other session of the database at ``url``, as a server restart does; return how many."""
    with closing(sql.connect_postgres(url)) as conn:
        ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    return ended


@pytest.fixture
def client(pg_url, tmp_path):
    app = create_app({"DATABASE": pg_url, "NOW": DEMO_NOW, "TESTING": True, "MAILDIR": str(tmp_path / "mail"),
                      "TRUSTED_PROXY_HOPS": 1})
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return c


def test_reads_after_the_server_ended_the_kept_connection_are_answered(client, pg_url):
    first = client.get("/api/v1/summary")
    assert first.status_code == 200
    for _ in range(3):
        assert end_every_session(pg_url) >= 1  # the app's own read connection among them
        again = client.get("/api/v1/summary")
        assert again.status_code == 200 and again.get_json() == first.get_json()
        assert client.get("/towns/pechory").status_code == 200


def test_a_report_after_the_server_ended_the_kept_write_connection_is_stored(client, pg_url):
    def report(n: int):
        return client.post("/api/v1/reports", json={"service": "internet", **PECHORY},
                           headers={"X-Forwarded-For": f"198.51.100.{n}"})

    assert report(1).status_code == 202
    assert end_every_session(pg_url) >= 2  # the read and the write connection
    stored = report(2)
    assert stored.status_code == 202, stored.get_data(as_text=True)
    with closing(sql.connect_postgres(pg_url)) as conn:
        assert conn.execute("SELECT count(*) FROM reports").fetchone()[0] == 2


def test_a_closed_connection_is_seen_without_asking_the_server(pg_url):
    with closing(sql.connect_postgres(pg_url)) as conn:
        assert sql.still_open(conn)
        end_every_session(pg_url)
        deadline = time.monotonic() + 2  # the server's notice arrives within moments
        while sql.still_open(conn) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not sql.still_open(conn)
