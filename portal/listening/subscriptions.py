"""Subscribe to a place, confirm by the e-mailed link, unsubscribe, forget; counts for staff.

A subscription names a town (slug) or a point, kept only as its ~100 m cell (``cells``),
one or more services and a language, and where to send: an e-mail address or a webhook URL.
Nothing is sent to it but the confirmation until its link is opened (double opt-in). The
address is stored only in the subscription row: unsubscribing deletes the row, and so do
``forget`` and ``purge_unconfirmed`` (pending for more than ``PENDING_DAYS``).

Every function here takes a connection inside the caller's transaction (``store.transaction``).
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from shapely import wkb
from shapely.geometry import Point

from portal.data import db, layers
from portal.data import statements as sql
from portal.listening import cells, outbox
from portal.listening.schema import SERVICE_BITS

SERVICES = tuple(SERVICE_BITS)
LANGUAGES = ("ru", "en")
PENDING_DAYS = 7
MAX_EMAIL = 254
MAX_URL = 2000


class SubscriptionError(ValueError):
    """A refused field; ``field`` names it and the message says what would be right."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Request:
    """A validated subscription request: where to send, which place, which services, which language."""

    channel: str  # "email" or "webhook"
    address: str  # the normalised e-mail address or the webhook URL
    town: str | None
    cell: str | None
    lat: float | None  # the cell's centre, never the submitted point
    lon: float | None
    services: tuple[str, ...]
    lang: str

    @property
    def mask(self) -> int:
        """Return the services as a bit mask."""
        return services_mask(self.services)


def services_mask(services) -> int:
    """Return the bit mask of service names."""
    return sum(SERVICE_BITS[s] for s in set(services))


def services_of(mask: int) -> tuple[str, ...]:
    """Return the service names of a bit mask, in canonical order."""
    return tuple(s for s, bit in SERVICE_BITS.items() if mask & bit)


def normalise_email(raw) -> str:
    """Return the address as stored (domain lower-cased, IDN as ASCII), or raise SubscriptionError."""
    if not isinstance(raw, str) or not raw.strip():
        raise SubscriptionError("email", "missing email: give the address to send notifications to")
    if len(raw) > MAX_EMAIL:
        raise SubscriptionError("email", f"email is longer than {MAX_EMAIL} characters")
    try:
        found = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise SubscriptionError("email", f"email {raw.strip()[:60]!r} is not an address: {exc}") from None
    # Lower-cased whole: no provider treats local parts by case, and forget must find the address as typed.
    return (found.ascii_email or found.normalized).lower()


def parse(data: Mapping, conn, *, default_lang: str = "ru", check_webhook=None) -> Request:
    """Validate a request's fields (``email`` or ``webhook``, ``town`` or ``lat``/``lon``, ``services``, ``lang``).

    ``check_webhook(url)`` returns the URL to store or raises ``ValueError`` with the reason
    (``webhooks.check_url`` with the setting for private addresses).
    """
    if not isinstance(data, Mapping):
        raise SubscriptionError("body", "the body must be a JSON object of fields")
    email, webhook = data.get("email"), data.get("webhook")
    if email not in (None, "") and webhook not in (None, ""):
        raise SubscriptionError("webhook", "give either email or webhook, not both")
    if webhook not in (None, ""):
        if not isinstance(webhook, str) or len(webhook) > MAX_URL:
            raise SubscriptionError("webhook", f"webhook must be an http(s) URL of at most {MAX_URL} characters")
        try:
            address = check_webhook(webhook.strip()) if check_webhook else webhook.strip()
        except ValueError as exc:
            raise SubscriptionError("webhook", f"webhook {webhook[:80]!r} refused: {exc}") from None
        channel = "webhook"
    else:
        channel, address = "email", normalise_email(email)
    town, cell, lat, lon = parse_place(data, conn)
    return Request(channel=channel, address=address, town=town, cell=cell, lat=lat, lon=lon,
                   services=_services(data.get("services")), lang=_lang(data.get("lang"), default_lang))


def parse_place(data: Mapping, conn) -> tuple:
    """Return (town, cell, cell centre lat, lon) from ``town`` or ``lat``/``lon``; refusals name their field.

    Every public write that names a place (subscriptions, reports) parses it here.
    """
    town, lat, lon = data.get("town"), data.get("lat"), data.get("lon")
    has_point = lat not in (None, "") or lon not in (None, "")
    if town not in (None, "") and has_point:
        raise SubscriptionError("town", "give either town or lat and lon, not both")
    if town not in (None, ""):
        if not isinstance(town, str) or not known_town(conn, town.strip().lower()):
            raise SubscriptionError("town", f"unknown town {str(town)[:60]!r}; give a town slug such as "
                                            "'pechory' (see /api/v1/towns)")
        return town.strip().lower(), None, None, None
    if not has_point:
        raise SubscriptionError("town", "missing place: give town (a slug) or lat and lon")
    lat = _coordinate("lat", lat, 90)
    lon = _coordinate("lon", lon, 180)
    cell, centre_lat, centre_lon = cells.cell_of(lat, lon)
    return None, cell, centre_lat, centre_lon


def parse_household(data, conn, *, default_lang: str = "ru") -> tuple:
    """Return ``(town, cell, lat, lon, email or None, lang)``: what every household's write names.

    Interest and feedback take a place (a point's town asked of its cell's centre, like everything
    else about the point), an optional e-mail and the letters' language; refusals name their field.
    """
    if not isinstance(data, Mapping):
        raise SubscriptionError("body", "the body must be a JSON object of fields")
    town, cell, lat, lon = parse_place(data, conn)
    if cell is not None:
        town = town_at(conn, lat, lon)
    email = data.get("email")
    email = normalise_email(email) if email not in (None, "") else None
    return town, cell, lat, lon, email, _lang(data.get("lang"), default_lang)


def town_at(conn, lat: float, lon: float) -> str | None:
    """Return the slug of the live town whose extent holds the point, if any."""
    live = layers.live_layer_ids(conn)["towns"]
    point = Point(lon, lat)
    for slug, geom in sql.run(conn, _statements().town_extents, layer=live):
        if wkb.loads(bytes(geom)).covers(point):
            return slug
    return None


def _coordinate(name: str, raw, limit: float) -> float:
    """Return a latitude or longitude in degrees, refusing anything else."""
    try:
        value = float(str(raw).strip().replace(",", ".")) if not isinstance(raw, (int, float)) else float(raw)
    except ValueError:
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value) or not -limit <= value <= limit:
        raise SubscriptionError(name, f"{name} must be a number of degrees between -{limit} and {limit},"
                                      f" not {str(raw)[:40]!r}")
    return value


def _services(raw) -> tuple[str, ...]:
    """Return the services named (a list, or one name, or names separated by commas)."""
    if isinstance(raw, str):
        raw = [part for part in raw.replace(" ", ",").split(",") if part]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SubscriptionError("services", f"missing services: give one or more of {', '.join(SERVICES)}")
    for s in raw:
        if s not in SERVICE_BITS:
            raise SubscriptionError("services", f"services: unknown service {str(s)[:30]!r}; expected one or more of "
                                                f"{', '.join(SERVICES)}")
    return tuple(s for s in SERVICES if s in raw)


def _lang(raw, default: str) -> str:
    """Return the language of the messages."""
    if raw in (None, ""):
        return default
    if raw not in LANGUAGES:
        raise SubscriptionError("lang", f"unknown lang {str(raw)[:20]!r}; expected ru or en")
    return raw


def known_town(conn, slug: str) -> bool:
    """Return whether the slug is a town of the live towns layer."""
    live = layers.live_layer_ids(conn)["towns"]
    return sql.scalar(conn, _statements().known_town, layer=live, slug=slug) is not None


def subscribe(conn, req: Request, now: datetime) -> dict:
    """Store a pending subscription and its confirmation message in the outbox; return its id, token, secret."""
    token = secrets.token_urlsafe(24)
    secret = secrets.token_hex(32) if req.channel == "webhook" else None
    subscription_id = sql.scalar(
        conn, _statements().insert, channel=req.channel, address=req.address, secret=secret, token=token,
        town=req.town, cell=req.cell, lat=req.lat, lon=req.lon, services=req.mask, lang=req.lang,
        created_at=db.iso(now))
    outbox.record_confirmation(conn, subscription_id, now)
    return {"id": subscription_id, "token": token, "secret": secret}


def find(conn, token: str):
    """Return the subscription row of a link token, or None."""
    if not isinstance(token, str) or not 10 <= len(token) <= 64:
        return None
    return sql.run(conn, _statements().by_token, token=token).fetchone()


def describe(row) -> dict:
    """Return what a page may show of a subscription: place and services, never the address."""
    return {"town": row["town"], "cell": row["cell"], "lat": row["lat"], "lon": row["lon"],
            "services": list(services_of(row["services"])), "lang": row["lang"], "channel": row["channel"],
            "confirmed": row["confirmed_at"] is not None}


def confirm(conn, token: str, now: datetime) -> dict | None:
    """Confirm the subscription of a link (again is fine); it replaces the same address's older one for that place."""
    row = find(conn, token)
    if row is None:
        return None
    if row["confirmed_at"] is None:
        q = _statements()
        sql.run(conn, q.confirm, confirmed_at=db.iso(now), id=row["id"])
        sql.run(conn, q.replaced, channel=row["channel"], address=row["address"], id=row["id"],
                town=row["town"] or "", cell=row["cell"] or "")
        row = find(conn, token)
    return describe(row)


def unsubscribe(conn, token: str) -> bool:
    """End the subscription of a link: its row, address and pending deliveries are deleted."""
    return sql.run(conn, _statements().delete_token, token=token).rowcount > 0


def unsubscribe_id(conn, subscription_id: int) -> bool:
    """End a subscription by id (a webhook answering 410 Gone)."""
    return sql.run(conn, _statements().delete_id, id=subscription_id).rowcount > 0


def forget(conn, email: str) -> int:
    """Delete every subscription of an e-mail address (on the person's request); return how many."""
    address = normalise_email(email)
    return sql.run(conn, _statements().forget, address=address).rowcount


def purge_unconfirmed(conn, now: datetime, days: int = PENDING_DAYS) -> int:
    """Delete subscriptions whose link was not opened within ``days``; return how many."""
    cutoff = db.iso(now - timedelta(days=days))
    return sql.run(conn, _statements().purge, cutoff=cutoff).rowcount


def counts(conn) -> list[dict]:
    """Return subscriptions per place and service, confirmed and pending: never an address.

    A point subscription is counted in the town whose extent holds its cell, else as ``(point)``.
    """
    import shapely

    towns = layers.load_towns(conn)
    rows = sql.run(conn, _statements().counts).fetchall()
    places = [r["town"] for r in rows]
    points = [n for n, r in enumerate(rows) if r["town"] is None]
    for n in points:
        places[n] = "(point)"
    if points and towns:
        tree = shapely.STRtree([t.geometry for t in towns])
        found = tree.query(shapely.points([(rows[n]["lon"], rows[n]["lat"]) for n in points]),
                           predicate="intersects")
        for point_index, town_index in zip(*found.tolist()):
            places[points[point_index]] = towns[town_index].slug
    table: dict[tuple[str, str, str], dict] = {}
    for place, r in zip(places, rows):
        kind = "town" if r["town"] else "point"
        for service in services_of(r["services"]):
            entry = table.setdefault((place, kind, service), {"town": place, "kind": kind, "service": service,
                                                              "confirmed": 0, "pending": 0})
            entry["confirmed" if r["ok"] else "pending"] += 1
    return sorted(table.values(), key=lambda e: (e["town"], e["kind"], SERVICES.index(e["service"])))


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module (``portal.data.statements``)."""
    s, t = sql.table("subscriptions"), sql.table("towns")
    value = sa.bindparam
    return SimpleNamespace(
        # By slug (the order of the primary key SQLite reads them in).
        town_extents=sql.Statement(sa.select(t.c.slug, sql.geometry_out(t.c.geom)).where(
            t.c.layer_id == value("layer")).order_by(t.c.slug)),
        known_town=sql.Statement(sa.select(sa.literal(1)).where(t.c.layer_id == value("layer"),
                                                                t.c.slug == value("slug"))),
        insert=sql.Statement(sa.insert(s).values({c: value(c) for c in (
            "channel", "address", "secret", "token", "town", "cell", "lat", "lon", "services", "lang",
            "created_at")}).returning(s.c.id)),
        by_token=sql.Statement(sa.select(s).where(s.c.token == value("token"))),
        confirm=sql.Statement(sa.update(s).where(s.c.id == value("id")).values(
            confirmed_at=value("confirmed_at"))),
        # The same address's older confirmed subscription of the same place (town or cell).
        replaced=sql.Statement(sa.delete(s).where(
            s.c.channel == value("channel"), s.c.address == value("address"), s.c.id != value("id"),
            s.c.confirmed_at.is_not(None), sa.func.coalesce(s.c.town, "") == value("town"),
            sa.func.coalesce(s.c.cell, "") == value("cell"))),
        delete_token=sql.Statement(sa.delete(s).where(s.c.token == value("token"))),
        delete_id=sql.Statement(sa.delete(s).where(s.c.id == value("id"))),
        forget=sql.Statement(sa.delete(s).where(s.c.channel == sql.const("email"),
                                                s.c.address == value("address"))),
        purge=sql.Statement(sa.delete(s).where(s.c.confirmed_at.is_(None), s.c.created_at < value("cutoff"))),
        counts=sql.Statement(sa.select(s.c.town, s.c.lat, s.c.lon, s.c.services,
                                       s.c.confirmed_at.is_not(None).label("ok"))
                             .where(sa.not_(sql.truthy(s.c.staff)))),
    )
