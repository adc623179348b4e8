"""When coverage arrives: tell the households that asked for fiber and left a confirmed address, once.

``coverage_changed`` runs inside the transaction that switches the live coverage layer (an
import's ``layers.store_layer``, a rollback's ``layers.activate_layer``), so the switch and the
event announcing it commit together or not at all (the outbox pattern; the worker mails the
letters later, see ``letters``).

A registration's fiber state is ``live`` (live fiber covers its cell's centre, or for a town any
part of its extent), ``planned`` (planned fiber with an ``available_from`` date), or nothing. It is
told when the new layer raises that state above both the replaced layer's and what it was told
before (``interest.told``): planned once, live once, and never again by a later import that
still covers it.
"""
from __future__ import annotations

from types import SimpleNamespace

import shapely
import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql

RANK = {None: 0, "planned": 1, "live": 2}


def _ready(conn) -> bool:
    """Return whether the tables this needs exist (a database mid-build may lack them)."""
    if sql.dialect_of(conn) != sql.SQLITE:
        return True  # PostgreSQL's schema is made whole, from every migration at once (``portable``)
    # SQLite only: the migrations build a file step by step, and a layer may be stored between two.
    columns = [r[1] for r in conn.execute("PRAGMA table_info(interest)")]
    return "told" in columns


def coverage_changed(conn, before_layer_id: int | None, after) -> int | None:
    """Record the arrival event of a coverage switch (inside its transaction); return its id, or None.

    ``after`` is the new live layer's areas (``layers.Area``) or its layer id.
    """
    if not _ready(conn):
        return None
    q = _statements()
    rows = sql.run(conn, q.waiting).fetchall()
    if not rows:
        return None
    from portal.data import layers
    from portal.listening import letters

    after_areas = _fiber(conn, after) if isinstance(after, int) else [a for a in after if a.technology == "fiber"]
    before_areas = _fiber(conn, before_layer_id) if before_layer_id is not None else []
    towns = {t.slug: t.geometry for t in layers.load_towns(conn)}
    now = db.iso(db.utcnow())
    arrivals = []
    for row in rows:
        if row["cell"] is not None:
            where = shapely.Point(row["lon"], row["lat"])
        elif row["town"] in towns:
            where = towns[row["town"]]
        else:
            continue
        status, date = state(after_areas, where)
        if RANK[status] > max(RANK[state(before_areas, where)[0]], RANK[row["told"]]):
            sql.run(conn, q.told, told=status, notified_at=now, id=row["id"])
            arrivals.append({"interest_id": row["id"], "status": status, "available_from": date})
    if not arrivals:
        return None
    return letters.record(conn, "coverage_arrived", {"arrivals": arrivals})


def _fiber(conn, layer_id: int) -> list:
    """Return the fiber areas of a stored layer."""
    from portal.data import layers

    return [a for a in layers.load_coverage(conn, layer_id) if a.technology == "fiber"]


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    i = sql.table("interest")
    value = sa.bindparam
    return SimpleNamespace(
        # Confirmed addresses not yet told that fiber is live.
        waiting=sql.Statement(sa.select(i.c.id, i.c.town, i.c.cell, i.c.lat, i.c.lon, i.c.told).where(
            i.c.email.is_not(None), i.c.confirmed_at.is_not(None),
            sa.func.coalesce(i.c.told, sql.const("")) != sql.const("live")).order_by(i.c.id)),
        told=sql.Statement(sa.update(i).where(i.c.id == value("id")).values(
            told=value("told"), notified_at=value("notified_at"))),
    )


def state(areas, where) -> tuple[str | None, str | None]:
    """Return ``(status, available_from)`` of fiber at a point or town extent: live, planned with a date, or none."""
    touching = [a for a in areas if a.geometry.intersects(where)]
    if any(a.status == "live" for a in touching):
        return "live", None
    dates = sorted(a.available_from for a in touching if a.status == "planned" and a.available_from)
    return ("planned", dates[0]) if dates else (None, None)
