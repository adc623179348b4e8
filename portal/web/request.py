"""Per-request plumbing: the read-only connection, the live snapshot, the clock."""
from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from datetime import datetime

from flask import Flask, current_app, g

from portal.coverage import snapshot as state
from portal.data import db


class PortalFlask(Flask):
    """Flask, asking once per function (not on every call) whether it must be run as a coroutine.

    Flask's ``ensure_sync`` inspects each view and hook on every request (six Python calls
    each, five times per request here); the answer for a given function never changes. The
    functions are held weakly: one made per request (a closure, a bound method of a
    class-based view) is forgotten with the request, not kept alive.
    """

    def __init__(self, *args, **kwargs):
        """Create the app with an empty set of functions known to be plain."""
        super().__init__(*args, **kwargs)
        self._plain_functions: weakref.WeakSet = weakref.WeakSet()

    def ensure_sync(self, func):
        """Return ``func`` itself when it is a plain function, else Flask's synchronous wrapper."""
        if func in self._plain_functions:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            self._plain_functions.add(func)
        return wrapped


# Each thread keeps its read-only connections open between requests: opening one cost more
# than the whole coverage answer. Every statement still sees the latest commit (no read
# transaction stays open). The file itself is never swapped: a rebuild copies its content in
# (``portal.build``), so an open connection stays the right one.
_local = threading.local()
KEEP_CONNECTIONS = 4
_inherited: list = []


def _forget_after_fork() -> None:
    """Drop connections inherited from a parent process (SQLite must not use them across fork)."""
    global _local
    # Keep them referenced: closing them here would touch the parent's file locks.
    _inherited.append(_local)
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)


def _connection(path: str) -> sqlite3.Connection:
    """Return this thread's open read-only connection to ``path``."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(path)
    if conn is None:
        while len(conns) >= KEEP_CONNECTIONS:
            conns.pop(next(iter(conns))).close()
        conn = conns[path] = db.connect_readonly(path)
    return conn


# The helpers below run several times per request: they resolve ``g`` and ``current_app``
# once each (every access through Flask's proxies costs a context look-up), and read what
# they stored from ``g``'s own dictionary (``g.get`` is a Python call, a missing attribute an
# exception).


def get_db():
    """Return this request's read-only connection (the thread's, kept open between requests)."""
    here = g._get_current_object()
    conn = here.__dict__.get("db")
    if conn is None:
        conn = _connection(current_app._get_current_object().config["DATABASE"])
        conn.pin()  # one look at meta for the whole request
        here.db = conn
    return conn


def get_snapshot() -> state.Snapshot:
    """Return the snapshot of the live data for this request (its incidents: ``snap.incidents``)."""
    here = g._get_current_object()
    snap = here.__dict__.get("snapshot")
    if snap is None:
        config = current_app._get_current_object().config
        snap = here.snapshot = state.snapshot(get_db(), config["DATABASE"], config["DROP_DISTANCE_M"],
                                              config["RESTORE_DEADLINE_HOURS"])
    return snap


def now() -> datetime:
    """Return the request's notion of now (UTC), one instant per request; tests may pin it with NOW."""
    here = g._get_current_object()
    found = here.__dict__.get("now")
    if found is None:
        pinned = current_app._get_current_object().config.get("NOW")
        found = here.now = db.parse_iso(pinned) if isinstance(pinned, str) else (pinned or db.utcnow())
    return found


def close_db(exc=None) -> None:
    """Release the request's connection; it stays open for the thread's next request."""
    conn = g._get_current_object().__dict__.pop("db", None)
    if conn is not None:
        conn.unpin()
        if conn.in_transaction:
            conn.rollback()


def init_app(app: Flask) -> None:
    """Register the teardown that closes connections."""
    app.teardown_appcontext(close_db)
