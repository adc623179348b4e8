"""Crowd reports: counting, de-duplication, the usual level, the spike rule, drafts, privacy.

The tests that use ``conn`` run twice: on SQLite and on PostgreSQL (a private cluster).
"""
from __future__ import annotations

import sqlite3

import pytest

from portal.listening import reports, store

T0 = 1_795_000_000.0  # a fixed moment; hours and days are counted from it
SECRET = "k" * 64


def report(conn, n, *, at=T0, town="pskov", service="internet", net=None, cookie=None):
    """Send one report from client ``n`` (its own /24 unless ``net`` pins one)."""
    address = f"10.{net if net is not None else n}.{n % 250}.7" if net is None else f"10.{net}.0.{n % 250}"
    return reports.record(conn, secret=SECRET, service=service, town=town, cell=None, address=address,
                          cookie=cookie or f"c{n}", at=at)


@pytest.fixture
def conn(write_conn):
    return write_conn


def test_one_reporter_counts_once_per_place_service_and_hour(conn):
    assert report(conn, 1)["counted"] is True
    assert report(conn, 1, at=T0 + 60)["counted"] is False
    assert report(conn, 1, service="tv")["counted"] is True
    assert report(conn, 1, town="pechory")["counted"] is True
    assert reports.recent(conn, town="pskov", service="internet", at=T0 + 60) == (1, 1)
    # Next hour they count again.
    assert report(conn, 1, at=T0 + 3000)["counted"] is False  # a rolling hour, not the clock hour
    assert report(conn, 1, at=T0 + 3601)["counted"] is True


def test_counts_per_town_and_usual_level_from_past_weeks(conn):
    week = 7 * 86400
    # Two weeks ago 8 people reported in this hour of the week, four weeks ago 4: usual (8 + 4) / 4 = 3.
    for n in range(8):
        report(conn, n, at=T0 - 2 * week)
    for n in range(4):
        report(conn, 100 + n, at=T0 - 4 * week)
    for n in range(5):
        report(conn, 200 + n, at=T0 - 600)
    counts = {c["service"]: c for c in reports.town_counts(conn, "pskov", T0)}
    assert counts["internet"] == {"service": "internet", "last_hour": 5, "usual": 3.0}
    assert counts["tv"] == {"service": "tv", "last_hour": 0, "usual": 0.0}


def test_forty_reporters_in_ten_minutes_draft_once_with_count(conn):
    draft_ids = []
    for n in range(40):
        draft_ids.append(report(conn, n, at=T0 + n * 15)["draft_id"])
    # The tenth distinct network crosses the line; later reports refresh the same draft.
    assert draft_ids[:9] == [None] * 9
    assert len(set(draft_ids[9:])) == 1 and draft_ids[9] is not None
    (draft,) = reports.drafts(conn)
    found = (draft["town"], draft["service"], draft["reporters"], draft["networks"])
    assert found == ("pskov", "internet", 40, 40)


def test_a_flood_from_one_network_drafts_nothing(conn):
    results = [report(conn, n, net=5) for n in range(200)]
    assert all(r["draft_id"] is None for r in results)
    assert reports.drafts(conn) == []
    # A flood from one client is stored but counted once.
    flood = [report(conn, 7, net=9, at=T0 + i) for i in range(50)]
    assert sum(r["counted"] for r in flood) == 1


def test_no_draft_when_the_usual_level_is_high(conn):
    week = 7 * 86400
    for k in range(1, 5):
        for n in range(40):
            report(conn, 1000 * k + n, at=T0 - k * week)
    before = len(reports.drafts(conn))
    # Usual 40 an hour, 20 per half hour: 30 reporters is not 5 x usual.
    assert all(report(conn, n, at=T0 + n)["draft_id"] is None for n in range(30))
    assert len(reports.drafts(conn)) == before


def test_reports_attached_to_an_active_incident_count_and_draft_nothing(conn):
    for n in range(15):
        reports.record(conn, secret=SECRET, service="internet", town="pskov", cell=None,
                       address=f"10.{n}.1.1", cookie=None, at=T0 + n, incident_id=3)
    assert reports.attached(conn, 3) == 15
    assert reports.drafts(conn) == []


def test_confirmed_or_dismissed_drafts_cannot_be_decided_again(conn):
    for n in range(10):
        report(conn, n)
    (draft,) = reports.drafts(conn)
    reports.mark(conn, draft["id"], state="dismissed", at=T0, by="staff", reason="a test")
    with pytest.raises(reports.Refused, match="already dismissed"):
        reports.mark(conn, draft["id"], state="confirmed", at=T0, by="staff")
    with pytest.raises(reports.Refused, match="does not exist"):
        reports.get_draft(conn, 999)


def test_bad_service_names_the_field(conn):
    with pytest.raises(reports.ReportError) as exc:
        report(conn, 1, service="radio")
    assert exc.value.field == "service"


def test_no_address_is_stored(conn):
    for n in range(12):
        report(conn, 1 + n)
    stored = [tuple(row) for table in ("reports", "report_drafts", "outbox")
              for row in conn.execute(f"SELECT * FROM {table}").fetchall()]
    assert len(stored) >= 12 + 1 + 1  # the reports, the draft and staff's notice of it
    dump = repr(stored)
    assert "10.1.1.7" not in dump and "10.1.1.0" not in dump and "'c1'" not in dump


@pytest.mark.parametrize("address", ["1.2.3.4", "255.255.255.255", "0.0.0.0", "10.0.0.1", "010.2.3.4",
                                     "256.1.1.1", "1.2.3", "1.2.3.4.5", "².1.1.1", "::ffff:1.2.3.4",
                                     "2001:db8::1", "unknown", ""])
def test_the_network_of_an_address_is_what_ipaddress_says(address):
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
        ip = ip.ipv4_mapped or ip if ip.version == 6 else ip
        expected = str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False))
    except ValueError:
        expected = address
    assert reports.network_of(address) == expected


def test_a_long_write_ahead_log_is_emptied_once_its_readers_let_go(tmp_path):
    # A reader that never lets go (as when other workers always read) keeps SQLite from starting
    # the log over: it grows with every write. Once the reader is done, shorten_log empties it.
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x BLOB)")
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    for _ in range(300):
        conn.execute("INSERT INTO t VALUES (randomblob(8000))")
    wal = tmp_path / "log.sqlite-wal"
    assert wal.stat().st_size > 2_000_000
    assert store.shorten_log(path, limit=10 * 1024 * 1024) is False  # not long yet: nothing done
    reader.rollback()
    assert store.shorten_log(path, limit=1_000_000) is True
    assert wal.stat().st_size == 0
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 300
