"""The same loads on both engines, side by side: SQLite (the default) and PostgreSQL + PostGIS with Redis.

For each engine, on the demo data: gunicorn as deployed (2 workers, ``docs/gunicorn.conf.py``)
loaded by wrk from loopback with reads (``/api/v1/check`` at points around the towns and
``/api/v1/status?town=``, one node's requests/s) and with crowd reports (``POST /api/v1/reports``
from random client networks, accepted/s); then the fan-out of an outage to N confirmed
subscribers (``benchmarks.fanout``: the staff command, the worker, a real SMTP server). The
PostgreSQL runs use a private cluster (``benchmarks.pg``) and a private redis-server for the
queue and the rate limits, as several machines would.

    python -m benchmarks.engines            # 10 s of load per figure, 100,000 subscribers
    python -m benchmarks.engines --small    # 4 s, 2,000 subscribers (CI)

Prints figures; asserts nothing about timings.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fanout, load, pg, reports  # noqa: E402
from portal.data import build, transfer  # noqa: E402


def _towns(db_path: Path) -> list[tuple[str, float, float]]:
    with sqlite3.connect(db_path) as conn:
        live = conn.execute("SELECT value FROM meta WHERE key = 'live_towns'").fetchone()[0]
        return conn.execute("SELECT slug, lat, lon FROM towns WHERE layer_id = ? ORDER BY slug", (live,)).fetchall()


def _loads(target: str, towns, seconds: int, say) -> dict:
    """Serve ``target`` with gunicorn; return reads/s (check, status) and reports accepted/s."""
    rng = random.Random(5)
    checks = [f"/api/v1/check?lat={lat + rng.uniform(-0.03, 0.03):.5f}&lon={lon + rng.uniform(-0.05, 0.05):.5f}"
              for _ in range(20) for _slug, lat, lon in towns]
    statuses = [f"/api/v1/status?town={slug}" for slug, _lat, _lon in towns]
    os.environ["PORTAL_TRUSTED_PROXY_HOPS"] = "1"  # each report's client is its X-Forwarded-For
    try:
        with load.gunicorn("wsgi:app", target, workers=2, probe="/api/v1/summary") as (base, _pid):
            load.wrk(base, checks[:200], 1)  # warm both workers
            found = {"check": load.wrk(base, checks, seconds), "status": load.wrk(base, statuses, seconds),
                     "reports": reports._post_load(base, [t[0] for t in towns], seconds, 24)}
    finally:
        os.environ.pop("PORTAL_TRUSTED_PROXY_HOPS", None)
    say(f"    reads: /api/v1/check {found['check']['rps']}/s (p99 {found['check']['p99_ms']} ms),"
        f" /api/v1/status?town= {found['status']['rps']}/s (p99 {found['status']['p99_ms']} ms);"
        f" reports {found['reports']['rps']}/s (p99 {found['reports']['p99_ms']} ms,"
        f" non-2xx {found['reports']['non2xx']})")
    return found


def run(folder: Path, seconds: int, subscribers: int, say=print) -> dict:
    """Run the loads on SQLite, then on PostgreSQL with Redis; return both engines' figures."""
    import psycopg

    demo = folder / "demo.sqlite"
    build.build_database(demo)
    towns = _towns(demo)
    figures: dict = {}
    say("  SQLite (one file; the queue in a SQLite file beside it)")
    work = folder / "sqlite.sqlite"
    shutil.copy(demo, work)
    figures["sqlite"] = _loads(str(work), towns, seconds, say)
    (folder / "fan-sqlite").mkdir()
    figures["sqlite"]["fanout"] = fanout.run(folder / "fan-sqlite", subscribers, say=lambda m: say("  " + m))
    say("  PostgreSQL + PostGIS (private cluster, Unix socket), Redis for the queue and the rate limits")
    with pg.cluster() as dsn, load.redis_server(folder) as redis_url:
        host = dict(part.split("=", 1) for part in dsn.split())["host"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_loads")
            conn.execute("CREATE DATABASE bench_fanout")
        url = f"postgresql://bench@/bench_loads?host={host}"
        transfer.move(str(demo), url)
        os.environ["PORTAL_REDIS_URL"] = redis_url
        try:
            figures["postgresql"] = _loads(url, towns, seconds, say)
        finally:
            os.environ.pop("PORTAL_REDIS_URL", None)
        (folder / "fan-pg").mkdir()
        figures["postgresql"]["fanout"] = fanout.run(
            folder / "fan-pg", subscribers, say=lambda m: say("  " + m),
            postgres=f"postgresql://bench@/bench_fanout?host={host}", redis=redis_url)
    _table(figures, say)
    return figures


def _table(figures: dict, say) -> None:
    """Print the engines side by side."""
    rows = [("reads/s, /api/v1/check (one node, 2 workers)", lambda f: f["check"]["rps"]),
            ("reads/s, /api/v1/status?town=", lambda f: f["status"]["rps"]),
            ("reports/s (POST, 24 connections)", lambda f: f["reports"]["rps"]),
            ("reports refused (non-2xx)", lambda f: f["reports"]["non2xx"]),
            ("reports p99 ms", lambda f: f["reports"]["p99_ms"]),
            ("fan-out: all deliveries queued, s", lambda f: f["fanout"]["all_queued_s"]),
            ("fan-out: all delivered, s", lambda f: f["fanout"]["all_delivered_s"]),
            ("fan-out: messages/s", lambda f: f["fanout"]["delivery_rate_per_s"])]
    say(f"  {'':48} {'SQLite':>10} {'PostgreSQL':>11}")
    for label, get in rows:
        say(f"  {label:48} {get(figures['sqlite']):>10} {get(figures['postgresql']):>11}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 s of load, 2,000 subscribers (CI)")
    parser.add_argument("--seconds", type=int, help="seconds of load per figure (default 10; small 4)")
    parser.add_argument("--subscribers", type=int, help="confirmed subscribers (default 100,000; small 2,000)")
    args = parser.parse_args(argv)
    if pg.available() is not None:
        print(f"skipped: {pg.available()}")
        return 0
    seconds = args.seconds or (4 if args.small else 10)
    subscribers = args.subscribers or (2_000 if args.small else 100_000)
    with tempfile.TemporaryDirectory(prefix="portal-engines-") as tmp:
        figures = run(Path(tmp), seconds, subscribers)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
