"""Fan-out at provider scale: an outage in a town with 100,000 confirmed subscribers.

Measured with the real parts: the staff command (``scripts/incident.py open``) in its own
process, the worker (``scripts/notify.py run``) in its own process, and a real SMTP server
(aiosmtpd) in this one counting what it accepts. Figures: how long the staff command took
(its process and the write inside it), how long until every delivery was queued (the
deliveries rows exist), and how fast the messages reached the SMTP server over the worker's
reused connections. Checked: every subscriber got exactly one message (by Message-ID).

    python -m benchmarks.fanout            # 100,000 subscribers
    python -m benchmarks.fanout --small    # 2,000 (CI)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from portal.data import build, db  # noqa: E402

TOWN = "pechory"


class Counter:
    """An SMTP handler that counts messages by Message-ID and notes when the first and last arrived."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.first = self.last = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        content = envelope.original_content or envelope.content
        start = content.find(b"Message-ID: ")
        end = content.find(b"\r\n", start)
        key = content[start + 12:end].decode() if start >= 0 else ""
        now = time.perf_counter()
        with self.lock:
            self.ids[key] = self.ids.get(key, 0) + 1
            self.first = self.first or now
            self.last = now
        return "250 OK"

    @property
    def count(self) -> int:
        with self.lock:
            return sum(self.ids.values())


def add_subscribers(db_path: Path, count: int) -> None:
    """Insert ``count`` confirmed town subscriptions (as confirming would leave them)."""
    stamp = db.iso(db.utcnow())
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO subscriptions (channel, address, token, town, services, lang, created_at, confirmed_at)"
            " VALUES ('email', ?, ?, ?, 1, ?, ?, ?)",
            ((f"subscriber{n}@example.org", f"bench-token-{n:08d}", TOWN, "ru" if n % 3 else "en", stamp, stamp)
             for n in range(count)))


def _free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, step: float = 0.02) -> float | None:
    """Wait until ``predicate()`` is true; return the seconds it took, or None after ``timeout``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(step)
    return None


def _write_and_nudge(db_path: Path, env: dict) -> float:
    """Time what the staff command does once its arguments are read: the write and the nudge.

    Measured on a town without subscribers (a maintenance far ahead, so nobody is told): the
    write records one event whatever the number of subscribers; fan-out is the worker's.
    """
    from datetime import timedelta

    from portal import config
    from portal.incidents import writes
    from portal.listening import queue
    from portal.listening.settings import Settings

    settings = Settings.from_config(config.settings({"DATABASE": str(db_path), "SMTP_URL": env["PORTAL_SMTP_URL"],
                                                     "REDIS_URL": env.get("PORTAL_REDIS_URL")}))
    queue.nudge(settings)  # the first nudge opens the queue; the command pays that too, counted once here
    start = db.utcnow() + timedelta(days=300)
    t0 = time.perf_counter()
    writes.schedule_maintenance(db_path, title="Bench", services=["tv"], towns=["pskov"], author="bench",
                                start=start, end=start + timedelta(hours=1))
    queue.nudge(settings)
    return time.perf_counter() - t0


def run(folder: Path, subscribers: int, workers: int = 2, say=print, postgres: str | None = None,
        redis: str | None = None) -> dict:
    """Build the demo database with subscribers, open an outage as staff, measure the fan-out.

    ``postgres``: the URL of an empty PostgreSQL database to run it on (the demo and its
    subscribers copied there by ``migrate_db``'s copy), instead of the SQLite file; ``redis``: the
    URL of the Redis the queue is in (as with several machines), else the queue is a SQLite file.
    """
    db_path = folder / "fanout.sqlite"
    build.build_database(db_path)
    add_subscribers(db_path, subscribers)
    if postgres is not None:
        from portal.data import transfer

        transfer.move(str(db_path), postgres)
        db_path = postgres
    counter = Counter()
    port = _free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    env = {**os.environ, "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{port}", "PORTAL_BASE_URL": "https://portal.example",
           "PORTAL_AUTHOR": "bench"}
    env.pop("PORTAL_REDIS_URL", None)
    if redis is not None:
        env["PORTAL_REDIS_URL"] = redis
    worker = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "notify.py"), "run", "--db", str(db_path),
                               "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    from portal.data import statements as sql

    conn = sql.connect(db_path)
    outbox, deliveries = sql.table("outbox"), sql.table("deliveries")
    opened = sql.Statement(sa.select(outbox.c.id).where(outbox.c.incident_id == sa.bindparam("incident"),
                                                        outbox.c.kind == "opened"))
    queued_rows = sql.Statement(sa.select(sa.func.count()).where(deliveries.c.event_id == sa.bindparam("event")))
    try:
        time.sleep(2.0)  # the worker has started and caught up with the demo's own events
        sent_before = counter.count
        write_s = _write_and_nudge(db_path, env)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        staff = subprocess.run([sys.executable, str(ROOT / "scripts" / "incident.py"), "open", "--db", str(db_path),
                                "--title", "Fiber cut", "--service", "internet", "--town", TOWN],
                               env=env, capture_output=True, text=True)
        staff_s = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        staff_cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        if staff.returncode != 0:
            raise RuntimeError(staff.stderr)
        incident = int(staff.stdout.strip().splitlines()[-1])
        event = sql.scalar(conn, opened, incident=incident)
        # The write itself, as the audit row and the event's stamp date it, is inside the command's time.
        queued = _wait(lambda: sql.scalar(conn, queued_rows, event=event) >= subscribers, timeout=120)
        queued_s = None if queued is None else queued + staff_s
        say(f"  staff command {staff_s:.2f} s ({staff_cpu_s:.2f} s of CPU; its write and nudge alone"
            f" {write_s * 1000:.0f} ms); all {subscribers} deliveries queued "
            f"{'after %.2f s' % queued_s if queued_s else 'NOT within 120 s'}")
        timeout = max(60.0, subscribers / 100)
        delivered = _wait(lambda: counter.count - sent_before >= subscribers, timeout=timeout, step=0.1)
        time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        conn.close()
        controller.stop()
    ours = {k: v for k, v in counter.ids.items() if k.startswith(f"<e{event}.")}
    span = (counter.last - counter.first) if counter.first and counter.last else 0
    figures = {
        "subscribers": subscribers,
        "staff_command_s": round(staff_s, 2),
        "staff_command_cpu_s": round(staff_cpu_s, 2),
        "write_and_nudge_ms": round(write_s * 1000, 1),
        "all_queued_s": round(queued_s, 2) if queued_s else None,
        "all_delivered_s": round(delivered + staff_s, 2) if delivered else None,
        "messages_received": sum(ours.values()),
        "distinct_message_ids": len(ours),
        "duplicates": sum(v - 1 for v in ours.values()),
        "delivery_rate_per_s": round(sum(ours.values()) / span) if span else None,
    }
    say(f"  delivered {figures['messages_received']} messages ({figures['distinct_message_ids']} distinct, "
        f"{figures['duplicates']} duplicates) at {figures['delivery_rate_per_s']} messages/s over reused "
        f"connections")
    if figures["distinct_message_ids"] != subscribers or figures["duplicates"]:
        raise AssertionError(f"fan-out lost or repeated messages: {figures}")
    return figures


def main(argv=None) -> int:
    """Run the fan-out benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2,000 subscribers (CI)")
    parser.add_argument("--subscribers", type=int, help="confirmed subscribers in the town (default 100,000)")
    parser.add_argument("--workers", type=int, default=2, help="worker threads (default 2)")
    args = parser.parse_args(argv)
    count = args.subscribers or (2_000 if args.small else 100_000)
    with tempfile.TemporaryDirectory(prefix="portal-fanout-") as tmp:
        figures = run(Path(tmp), count, args.workers)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
