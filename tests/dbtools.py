"""Helpers tests share for hand-made databases: create one with given towns, dump one to compare."""
from __future__ import annotations

import sqlite3

from shapely.geometry import box

from portal.data import db, layers, migrations


def database_with_towns(path, towns, source: str = "test"):
    """Create a migrated database at ``path`` whose live towns layer is ``towns``; return the path."""
    migrations.migrate(path)
    with db.writing(path) as conn:
        layers.store_layer(conn, "towns", towns, source=source, author="test")
    return path


def square_town(slug, name, lon, lat, size=0.1):
    """Return a town whose extent is the square [lon, lon+size] x [lat, lat+size]."""
    return layers.Town(slug=slug, name=name, name_ru=None, population=1000, lat=lat + size / 2,
                       lon=lon + size / 2, geometry=box(lon, lat, lon + size, lat + size))


def dump(path) -> str:
    """Return the whole database as SQL text, to prove a refusal changed nothing."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
