"""Helpers for the notification tests: a database of hand-made towns with confirmed subscribers."""
from __future__ import annotations

import secrets
import sqlite3

from dbtools import database_with_towns, square_town
from shapely.geometry import box

from portal import config
from portal.data import db
from portal.listening.cells import cell_of
from portal.listening.schema import SERVICE_BITS
from portal.listening.settings import Settings

# Alpha and Beta share an edge; BUILDING is a block inside Alpha.
TOWNS = [square_town("alpha", "Alpha", 30.0, 60.0), square_town("beta", "Beta", 30.1, 60.0)]
BUILDING = box(30.04, 60.04, 30.06, 60.06)


def towns_db(path):
    """Return a migrated database whose live towns are Alpha and Beta."""
    return database_with_towns(path, TOWNS)


def add_subscriber(path, address, *, town=None, point=None, services=("internet",), lang="en",
                   channel="email", secret=None) -> dict:
    """Insert one confirmed subscription directly; return its id and token."""
    token = secrets.token_urlsafe(24)
    cell = lat = lon = None
    if point is not None:
        cell, lat, lon = cell_of(*point)
    mask = sum(SERVICE_BITS[s] for s in services)
    with sqlite3.connect(path) as conn:
        cur = conn.execute(
            "INSERT INTO subscriptions (channel, address, secret, token, town, cell, lat, lon, services, lang,"
            " created_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (channel, address, secret, token, town, cell, lat, lon, mask, lang, db.iso(db.utcnow()),
             db.iso(db.utcnow())))
    return {"id": cur.lastrowid, "token": token}


def settings_for(path, **overrides) -> Settings:
    """Return listening settings for a test database (Maildir beside it unless SMTP_URL is given)."""
    base = {"DATABASE": str(path), "BASE_URL": "https://portal.example", "NOTIFY_FOLD_SECONDS": 1,
            "NOTIFY_RETRY_SECONDS": 1, "SMTP_URL": None, "REDIS_URL": None}
    return Settings.from_config(config.settings({**base, **overrides}))


def states(path) -> dict:
    """Return the number of deliveries per state."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
