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

from portal.data import db, layers
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
    cur = conn.execute(
        "INSERT INTO interest (household, town, cell, lat, lon, email, lang, token, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (household) DO NOTHING",
        (household, item.town, item.cell, item.lat, item.lon, item.email, item.lang, token, db.iso(now)))
    counted = cur.rowcount == 1
    if counted and item.email:
        # Double opt-in: the confirmation is the only letter until its link is opened.
        letters.record(conn, "interest_confirm", {"interest_id": cur.lastrowid})
    return {"counted": counted, "token": token if counted and item.email else None}


def _by_token(conn, token: str):
    """Return the registration of a link token (one that left an address), or None."""
    if not isinstance(token, str) or not 10 <= len(token) <= 64:
        return None
    return conn.execute("SELECT * FROM interest WHERE token = ? AND email IS NOT NULL", (token,)).fetchone()


def confirm(conn, token: str, now: datetime) -> bool:
    """Confirm a registration's address (its link; again is fine); False for an unknown link."""
    row = _by_token(conn, token)
    if row is None:
        return False
    if row["confirmed_at"] is None:
        conn.execute("UPDATE interest SET confirmed_at = ? WHERE id = ?", (db.iso(now), row["id"]))
    return True


def is_known_link(conn, token: str) -> bool:
    """Return whether a forget link still names a registration with an address."""
    return _by_token(conn, token) is not None


def forget_link(conn, token: str) -> bool:
    """Delete a registration and its address (the person's link): it no longer counts. False when unknown."""
    return conn.execute("DELETE FROM interest WHERE token = ? AND email IS NOT NULL", (token,)).rowcount > 0


def forget(conn, email: str) -> int:
    """Delete every registration of an e-mail address (a person's request); return how many."""
    return conn.execute("DELETE FROM interest WHERE email = ?", (normalise_email(email),)).rowcount


def purge_unconfirmed(conn, now: datetime, days: int = PENDING_DAYS) -> int:
    """Delete addresses not confirmed within ``days`` (the household still counts); return how many."""
    return conn.execute("UPDATE interest SET email = NULL WHERE email IS NOT NULL AND confirmed_at IS NULL"
                        " AND created_at < ?", (db.iso(now - timedelta(days=days)),)).rowcount


def households(conn, town: str) -> int:
    """Return how many households asked for fiber in a town (by town or at a point inside it)."""
    return conn.execute("SELECT count(*) FROM interest WHERE town = ?", (town,)).fetchone()[0]


def town_counts(conn) -> dict[str, int]:
    """Return households per town."""
    return dict(conn.execute("SELECT town, count(*) FROM interest WHERE town IS NOT NULL GROUP BY town"))


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
    for lat, lon in conn.execute("SELECT lat, lon FROM interest WHERE cell IS NOT NULL"):
        cell, clat, clon = cells.cell_of(lat, lon, size_m)
        counts[cell] += 1
        centres[cell] = (clat, clon)
    return [{"cell": c, "lat": centres[c][0], "lon": centres[c][1], "size_m": size_m, "households": n}
            for c, n in sorted(counts.items()) if n >= minimum]


def set_threshold(conn, town: str, count: int, deadline: str | None, now: datetime) -> None:
    """Set (or replace) the staff target of households for a planned area, with its deadline."""
    conn.execute(
        "INSERT INTO demand_thresholds (town, households, deadline, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (town) DO UPDATE SET households = excluded.households, deadline = excluded.deadline,"
        " set_at = excluded.set_at", (town, count, deadline, db.iso(now)))


def demand(conn, town: str) -> dict:
    """Return the public demand of a town: ``{"households", "threshold"?, "deadline"?, "progress"?}``."""
    answer: dict = {"households": households(conn, town)}
    row = conn.execute("SELECT households, deadline FROM demand_thresholds WHERE town = ?",
                       (town,)).fetchone()
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
    for lat, lon, town in conn.execute("SELECT lat, lon, town FROM interest WHERE cell IS NOT NULL"):
        cell, clat, clon = cells.cell_of(lat, lon, size_m)
        counts[(cell, town)] += 1
        centres[cell] = (clat, clon)
    ordered = sorted(counts.items(), key=lambda p: (p[0][0], p[0][1] or ""))
    rows = [{"kind": "cell", "cell": cell, "town": town, "size_m": size_m, "households": n,
             "lat": centres[cell][0], "lon": centres[cell][1]} for (cell, town), n in ordered]
    live = layers.live_layer_ids(conn)["towns"]
    for town, n, lat, lon in conn.execute(
            "SELECT i.town, count(*), t.lat, t.lon FROM interest i"
            " JOIN towns t ON t.slug = i.town AND t.layer_id = ?"
            " WHERE i.cell IS NULL GROUP BY i.town ORDER BY i.town", (live,)):
        rows.append({"kind": "town", "cell": None, "town": town, "size_m": None, "households": n, "lat": lat,
                     "lon": lon})
    return rows
