"""Per-request plumbing: the read-only connection, the live snapshot, the clock."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, current_app, g

from . import db, state


def get_db():
    """Return this request's read-only connection, opening it on first use."""
    if "db" not in g:
        g.db = db.connect_readonly(current_app.config["DATABASE"])
    return g.db


def get_snapshot() -> state.Snapshot:
    """Return the snapshot of the live layers for this request."""
    if "snapshot" not in g:
        g.snapshot = state.snapshot(
            get_db(), current_app.config["DATABASE"], current_app.config["DROP_DISTANCE_M"]
        )
    return g.snapshot


def now() -> datetime:
    """Return the request's notion of now (UTC); tests may pin it with NOW."""
    pinned = current_app.config.get("NOW")
    return db.parse_iso(pinned) if isinstance(pinned, str) else (pinned or db.utcnow())


def close_db(exc=None) -> None:
    """Close the request's connection."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    """Register the teardown that closes connections."""
    app.teardown_appcontext(close_db)
