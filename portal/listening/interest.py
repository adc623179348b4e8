""""Bring fiber here": households register interest in a town or at a point; demand is counted.

Nothing here knows about Flask. A point is kept only as its ~100 m cell (``cells``), and the
public sees counts of cells of at least ``PUBLIC_CELL_M`` metres holding at least
``MIN_PUBLIC_COUNT`` households, so no count can be traced to one home. One household counts
once per place: the row's key is a keyed hash (the per-database ``listening_key``) of the
client's address, its cookie and the place, which keeps neither the address nor the cookie.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import db, layers
from portal.data import statements as sql
from portal.listening import cells, letters
from portal.listening.subscriptions import PENDING_DAYS, normalise_email, parse_household

# Public cells are at least this big, and need this many households before they are shown.
PUBLIC_CELL_M = 250.0
MIN_PUBLIC_COUNT = 3


@dataclass(frozen=True)
class Interest:
    """A validated registration: a town, and for a point its cell and the cell's centre."""

    town: str | None
    cell: str | None
    lat: float | None
    lon: float | None
    email: str | None
    lang: str

    @property
    def place(self) -> str:
        """Return the place a household counts once in (its cell, else its town)."""
        return self.cell or f"town:{self.town}"


def parse(data: Mapping, conn, *, default_lang: str = "ru") -> Interest:
    """Validate ``town`` or ``lat``/``lon``, optional ``email`` and ``lang``.

    Raise SubscriptionError naming the field.
    """
    town, cell, lat, lon, email, lang = parse_household(data, conn, default_lang=default_lang)
    return Interest(town=town, cell=cell, lat=lat if cell else None, lon=lon if cell else None,
                    email=email, lang=lang)


def household_key(secret: str, client: str, cookie: str, place: str) -> str:
    """Return the keyed hash that makes one household count once per place."""
    return hmac.new(secret.encode(), f"{client}\n{cookie}\n{place}".encode(), hashlib.sha256).hexdigest()[:32]


def register(conn, item: Interest, household: str, now: datetime) -> dict:
    """Store a registration unless this household already registered here; return ``{"counted", "token"}``.

    ``token`` (for the confirmation link) is given only when a new row with an e-mail was made.
    """
    token = secrets.token_urlsafe(24)
    interest_id = sql.scalar(conn, _statements().register, household=household, town=item.town,
                             cell=item.cell, lat=item.lat, lon=item.lon, email=item.email, lang=item.lang,
                             token=token, created_at=db.iso(now))
    counted = interest_id is not None
    if counted and item.email:
        # Double opt-in: the confirmation is the only letter until its link is opened.
        letters.record(conn, "interest_confirm", {"interest_id": interest_id})
    return {"counted": counted, "token": token if counted and item.email else None}


def _by_token(conn, token: str):
    """Return the registration of a link token (one that left an address), or None."""
    if not isinstance(token, str) or not 10 <= len(token) <= 64:
        return None
    return sql.run(conn, _statements().by_token, token=token).fetchone()


def confirm(conn, token: str, now: datetime) -> bool:
    """Confirm a registration's address (its link; again is fine); False for an unknown link."""
    row = _by_token(conn, token)
    if row is None:
        return False
    if row["confirmed_at"] is None:
        sql.run(conn, _statements().confirm, confirmed_at=db.iso(now), id=row["id"])
    return True


def is_known_link(conn, token: str) -> bool:
    """Return whether a forget link still names a registration with an address."""
    return _by_token(conn, token) is not None


def forget_link(conn, token: str) -> bool:
    """Delete a registration and its address (the person's link): it no longer counts. False when unknown."""
    return sql.run(conn, _statements().forget_link, token=token).rowcount > 0


def forget(conn, email: str) -> int:
    """Delete every registration of an e-mail address (a person's request); return how many."""
    return sql.run(conn, _statements().forget, email=normalise_email(email)).rowcount


def purge_unconfirmed(conn, now: datetime, days: int = PENDING_DAYS) -> int:
    """Delete addresses not confirmed within ``days`` (the household still counts); return how many."""
    return sql.run(conn, _statements().purge, cutoff=db.iso(now - timedelta(days=days))).rowcount


def households(conn, town: str) -> int:
    """Return how many households asked for fiber in a town (by town or at a point inside it)."""
    return sql.scalar(conn, _statements().households, town=town)


def town_counts(conn) -> dict[str, int]:
    """Return households per town."""
    return {town: n for town, n in sql.run(conn, _statements().town_counts)}


def cell_counts(conn, size_m: float = PUBLIC_CELL_M, minimum: int = MIN_PUBLIC_COUNT) -> list[dict]:
    """Return ``{"cell", "lat", "lon", "size_m", "households"}`` per cell of ``size_m`` (≥ 250 m).

    Cells with fewer than ``minimum`` households are left out.

    Each stored ~100 m cell is put in the bigger cell holding its centre, so the answer is
    built from centres only.
    """
    if size_m < PUBLIC_CELL_M:
        raise ValueError(f"cells smaller than {PUBLIC_CELL_M:g} m are not published")
    counts: Counter = Counter()
    centres: dict[str, tuple[float, float]] = {}
    for lat, lon in sql.run(conn, _statements().points):
        cell, clat, clon = cells.cell_of(lat, lon, size_m)
        counts[cell] += 1
        centres[cell] = (clat, clon)
    return [{"cell": c, "lat": centres[c][0], "lon": centres[c][1], "size_m": size_m, "households": n}
            for c, n in sorted(counts.items()) if n >= minimum]


def set_threshold(conn, town: str, count: int, deadline: str | None, now: datetime) -> None:
    """Set (or replace) the staff target of households for a planned area, with its deadline."""
    sql.run(conn, _statements().set_threshold, town=town, households=count, deadline=deadline,
            set_at=db.iso(now))


def demand(conn, town: str) -> dict:
    """Return the public demand of a town: ``{"households", "threshold"?, "deadline"?, "progress"?}``."""
    answer: dict = {"households": households(conn, town)}
    row = sql.run(conn, _statements().threshold, town=town).fetchone()
    if row is not None:
        answer["threshold"] = row[0]
        answer["deadline"] = row[1]
        answer["progress"] = round(min(1.0, answer["households"] / row[0]), 3)
    return answer


def staff_rows(conn, size_m: float = PUBLIC_CELL_M) -> list[dict]:
    """Return every count for planning: households per (cell of ``size_m``, town), and per town by name only.

    Unlike the public layer no minimum applies (staff plan with it), but cells are still at
    least 250 m, so the export holds no home either.
    """
    if size_m < PUBLIC_CELL_M:
        raise ValueError(f"cells smaller than {PUBLIC_CELL_M:g} m are not exported")
    counts: Counter = Counter()
    centres: dict[str, tuple[float, float]] = {}
    for lat, lon, town in sql.run(conn, _statements().points_with_town):
        cell, clat, clon = cells.cell_of(lat, lon, size_m)
        counts[(cell, town)] += 1
        centres[cell] = (clat, clon)
    ordered = sorted(counts.items(), key=lambda p: (p[0][0], p[0][1] or ""))
    rows = [{"kind": "cell", "cell": cell, "town": town, "size_m": size_m, "households": n,
             "lat": centres[cell][0], "lon": centres[cell][1]} for (cell, town), n in ordered]
    live = layers.live_layer_ids(conn)["towns"]
    for town, n, lat, lon in sql.run(conn, _statements().towns, layer=live):
        rows.append({"kind": "town", "cell": None, "town": town, "size_m": None, "households": n, "lat": lat,
                     "lon": lon})
    return rows


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    i, d, t = sql.table("interest"), sql.table("demand_thresholds"), sql.table("towns")
    value = sa.bindparam

    # A household already registered here: nothing is inserted and no id comes back.
    register = sql.insert_ignoring(i, {c: value(c) for c in (
        "household", "town", "cell", "lat", "lon", "email", "lang", "token", "created_at")},
        keys=["household"], returning=[i.c.id])

    with_email = i.c.email.is_not(None)
    return SimpleNamespace(
        register=sql.Statement(register),
        by_token=sql.Statement(sa.select(i).where(i.c.token == value("token"), with_email)),
        confirm=sql.Statement(sa.update(i).where(i.c.id == value("id")).values(
            confirmed_at=value("confirmed_at"))),
        forget_link=sql.Statement(sa.delete(i).where(i.c.token == value("token"), with_email)),
        forget=sql.Statement(sa.delete(i).where(i.c.email == value("email"))),
        purge=sql.Statement(sa.update(i).where(with_email, i.c.confirmed_at.is_(None),
                                               i.c.created_at < value("cutoff")).values(email=sa.null())),
        households=sql.Statement(sa.select(sa.func.count()).select_from(i).where(i.c.town == value("town"))),
        town_counts=sql.Statement(sa.select(i.c.town, sa.func.count()).where(i.c.town.is_not(None))
                                  .group_by(i.c.town)),
        points=sql.Statement(sa.select(i.c.lat, i.c.lon).where(i.c.cell.is_not(None))),
        points_with_town=sql.Statement(sa.select(i.c.lat, i.c.lon, i.c.town).where(i.c.cell.is_not(None))),
        towns=sql.Statement(
            sa.select(i.c.town, sa.func.count(), t.c.lat, t.c.lon)
            .select_from(i.join(t, sa.and_(t.c.slug == i.c.town, t.c.layer_id == value("layer"))))
            .where(i.c.cell.is_(None)).group_by(i.c.town, t.c.lat, t.c.lon).order_by(i.c.town)),
        set_threshold=sql.Statement(sql.upsert(d, ["town"], {c: value(c) for c in (
            "town", "households", "deadline", "set_at")}, ["households", "deadline", "set_at"])),
        threshold=sql.Statement(sa.select(d.c.households, d.c.deadline).where(d.c.town == value("town"))),
    )
