"""Helpers tests share for hand-made databases: create one with given towns, dump one to compare."""
from __future__ import annotations

import sqlite3

from portal import db, layers


def database_with_towns(path, towns, source: str = "test"):
    """Create a migrated database at ``path`` whose live towns layer is ``towns``; return the path."""
    db.migrate(path)
    with db.writing(path) as conn:
        layers.store_layer(conn, "towns", towns, source=source, author="test")
    return path


def dump(path) -> str:
    """Return the whole database as SQL text, to prove a refusal changed nothing."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
