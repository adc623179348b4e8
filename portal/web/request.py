"""Per-request plumbing: the read-only connection, the live snapshot, the clock."""
from __future__ import annotations

import os
import threading
from datetime import datetime

from flask import Flask, current_app, g

from portal.coverage import snapshot as state
from portal.data import db

# Each thread keeps its read-only connection between requests, because opening one costs more
# than the whole point answer (docs/performance.md).
_local = threading.local()


def _connection(path: str) -> db.ReadConnection:
    """Return this thread's connection to ``path``, opened on the thread's first request.

    Keyed by process: a forked worker never uses, nor closes, a connection its parent opened.
    """
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    pid = os.getpid()
    conn = conns.get((pid, path))
    if conn is None:
        # Another database (tests make one app after another): close this process's old one.
        for key in [key for key in conns if key[0] == pid]:
            conns.pop(key).close()
        conn = conns[(pid, path)] = db.connect_readonly(path)
    return conn


def get_db() -> db.ReadConnection:
    """Return this request's read-only connection, in a read transaction until the request ends.

    Every query of the request sees the same version of the data (so the ETag names the data
    the body was built from); the next request sees every commit made before it began.
    """
    conn = g.get("db")
    if conn is None:
        conn = _connection(current_app.config["DATABASE"])
        conn.begin()
        g.db = conn
    return conn


def get_snapshot() -> state.Snapshot:
    """Return the snapshot of the live data for this request (its incidents: ``snap.incidents``)."""
    snap = g.get("snapshot")
    if snap is None:
        config = current_app.config
        snap = g.snapshot = state.snapshot(get_db(), config["DATABASE"], config["DROP_DISTANCE_M"],
                                           config["RESTORE_DEADLINE_HOURS"])
    return snap


def now() -> datetime:
    """Return the request's notion of now (UTC), one instant per request; tests may pin it with NOW."""
    found = g.get("now")
    if found is None:
        pinned = current_app.config.get("NOW")
        found = g.now = db.parse_iso(pinned) if isinstance(pinned, str) else (pinned or db.utcnow())
    return found


def close_db(exc=None) -> None:
    """End the request's read transaction; the connection stays open for the thread's next request.

    A view that writes calls it before its write transaction: a commit made while this process
    still reads an older version cannot be checkpointed, so the write-ahead log would never start
    over and every later commit would pay for a checkpoint (and the log grow without end).
    A later ``get_db()`` in the same request begins a new read transaction.
    """
    conn = g.pop("db", None)
    if conn is not None:
        conn.rollback()


def init_app(app: Flask) -> None:
    """Register the teardown that ends the request's read transaction."""
    app.teardown_appcontext(close_db)
