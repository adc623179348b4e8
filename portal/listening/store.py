"""Write transactions for the listening tables, which leave the data revision alone.

Subscriptions, the outbox and deliveries are not public data: a page does not change when
someone subscribes or a message is sent, so these writes do not bump ``meta.revision`` (which
would turn every cached page and ETag over). A staff write records its events inside its own
``db.writing`` transaction instead (``outbox``).
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path


def connect(path: str | Path):
    """Open a write connection in autocommit mode (one statement, one transaction).

    ``path``: an SQLite file, or a ``postgresql://`` URL (a psycopg connection, rows read like SQLite's).
    """
    if "://" in str(path):
        from portal.data import statements

        return statements.connect_postgres(str(path))
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    # WAL with NORMAL: a commit survives the process being killed; only a power cut can undo
    # the last commits (a delivery then marked sent again is sent again, same Message-ID).
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


# Past this size the write-ahead log is checkpointed and emptied, waiting a moment for readers.
LONG_LOG_BYTES = 16 * 1024 * 1024
SHORTEN_WAIT_MS = 250

_local = threading.local()


def thread_connection(path: str | Path) -> sqlite3.Connection:
    """Return this thread's write connection to ``path``, opened once (per process: a fork opens its own).

    For writes made on every request (crowd reports): opening a connection costs about as much
    as the write itself. A PostgreSQL connection the server has closed since (a restart, a
    failover) is replaced before it is used (``statements.still_open``).
    """
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    key = (os.getpid(), str(path))
    conn = conns.get(key)
    if conn is not None and not isinstance(conn, sqlite3.Connection):
        from portal.data import statements

        if not statements.still_open(conn):
            conn.close()
            conn = None
    if conn is None:
        for stale in [k for k in conns if k[0] != key[0]]:
            del conns[stale]  # inherited from the parent process: never used here
        conn = conns[key] = connect(path)
    return conn


@contextmanager
def transaction(conn_or_path):
    """Yield a connection inside one ``BEGIN IMMEDIATE`` transaction: all of it lands, or none."""
    own = isinstance(conn_or_path, (str, Path))
    conn = connect(conn_or_path) if own else conn_or_path
    try:
        # SQLite: take the write lock now, not at the first write (no deadlock of two readers
        # turning writers). PostgreSQL locks rows as they are written.
        conn.execute("BEGIN IMMEDIATE" if isinstance(conn, sqlite3.Connection) else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if own:
            conn.close()


def shorten_log(path: str | Path, limit: int = LONG_LOG_BYTES) -> bool:
    """Empty the write-ahead log of ``path`` when it has grown past ``limit`` bytes; return whether it did.

    SQLite's own checkpoint after a commit copies what it can but cannot start the log over while
    any reader still uses it; when public writes and reads never pause (workers reading while
    others write), the log keeps growing. ``TRUNCATE`` waits (at most SHORTEN_WAIT_MS) for the
    readers of the moment, which last milliseconds, copies the log into the database and empties it.
    A stat per write; the checkpoint itself only when the log is long.
    """
    try:
        if os.stat(f"{path}-wal").st_size <= limit:
            return False
    except OSError:
        return False
    conn = connect(path)
    try:
        conn.execute(f"PRAGMA busy_timeout={SHORTEN_WAIT_MS}")  # busy: the next write tries again
        busy, _log, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy
    finally:
        conn.close()
