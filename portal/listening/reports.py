"""Crowd reports ("it is not working here"), their counts, the usual level, and drafted incidents.

Flask-free: callers pass a write connection (``store``) and the time. Nothing here keeps an
address or a point: a report names a town slug and/or a ~100 m cell (``cells``), and its
reporter and network only as keyed hashes whose key changes every day (HMAC of the
database's ``listening_key`` and the UTC date), so rows of different days cannot be linked.

Counting (in the spirit of Downdetector): one reporter counts once per place, service and
hour (a rolling hour: a report is counted when the same reporter has no counted report of that
place and service in the 60 minutes before it); later reports of theirs are stored but not
counted. So the counted rows of any window of an hour or less are distinct reporters, and
counting them is an index range count, not a DISTINCT over the rows (a report costs the same in
the thousandth minute of an outage as in the first). Likewise a report is its network's first
(``network_first``, from ``m013``) when no counted report from that network reached the place
and service in the ``SPIKE_WINDOW_S`` before it. The usual level for an hour is the mean of
distinct reporters in the same hour of the week over the past ``BASELINE_WEEKS``.

Spike rule (checked on each counted report, in its own transaction, so a draft appears with
the report that crossed the line and never twice): within the last ``SPIKE_WINDOW_S`` (30 min)
a town (or a cell outside towns) and service has at least ``SPIKE_MIN_NETWORKS`` (10) distinct
reporting networks (/24 for IPv4, /48 for IPv6) *and* at least ``SPIKE_RATIO`` (5) times the
usual count for half an hour. Counting networks, not reporters, means one flooding network can
never draft by itself; the floor of 10 keeps quiet towns (usual ~0) from drafting on a few taps.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import datetime, timezone
from functools import cache
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import statements as sql

SERVICES = ("internet", "tv", "phone")
SPIKE_WINDOW_S = 1800
SPIKE_MIN_NETWORKS = 10
SPIKE_RATIO = 5.0
BASELINE_WEEKS = 4
# A cell shows on the public map only from this many distinct reporters: fewer could point at a house.
MIN_CELL_COUNT = 3
# A draft left undecided this long stops collecting: a new spike drafts anew.
DRAFT_FRESH_S = 6 * 3600
WEEK_H = 168


class ReportError(ValueError):
    """A report field is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Refused(ValueError):
    """A staff decision on a draft that cannot be taken (unknown id, already decided)."""


def _day_key(secret: str, at: float) -> bytes:
    """Return the hashing key of the UTC day of ``at``: yesterday's hashes do not match today's."""
    day = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d")
    return hmac.new(secret.encode(), f"reports:{day}".encode(), hashlib.sha256).digest()


def network_of(address: str) -> str:
    """Return the network a client address belongs to (/24 for IPv4, /48 for IPv6)."""
    parts = address.split(".")
    if len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 and p == str(int(p)) for p in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"  # the common case, without ipaddress
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def identities(secret: str, address: str, cookie: str | None, at: float) -> tuple[str, str]:
    """Return ``(reporter hash, network hash)`` for a client; neither can be turned back into the address."""
    key = _day_key(secret, at)
    reporter = hmac.new(key, f"r|{address}|{cookie or ''}".encode(), hashlib.sha256).hexdigest()[:32]
    network = hmac.new(key, f"n|{network_of(address)}".encode(), hashlib.sha256).hexdigest()[:32]
    return reporter, network


def check_service(value) -> str:
    """Return the service named, or raise ReportError naming the field."""
    if value not in SERVICES:
        raise ReportError("service", f"service must be one of {', '.join(SERVICES)}, not {value!r}")
    return value


def record(conn, *, secret: str, service: str, town: str | None, cell: str | None,
           address: str, cookie: str | None, at: float, incident_id: int | None = None) -> dict:
    """Store one report inside the caller's write transaction; run the spike rule when it counts.

    Returns ``{"counted": bool, "draft_id": int | None, "drafted": bool}`` (``drafted``: this
    report made the draft, and staff's notice is in the outbox). ``incident_id`` is the active incident
    already covering this place and service: the report attaches to it and drafts nothing.
    """
    check_service(service)
    if not town and not cell:
        raise ReportError("town", "give a town or lat and lon")
    reporter, network = identities(secret, address, cookie, at)
    q = _q(bool(town))
    place = town or cell
    counted = sql.scalar(conn, q.seen, reporter=reporter, service=service, place=place, since=at - 3600) is None
    network_first = counted and sql.scalar(conn, q.network_seen, network=network, service=service, place=place,
                                           since=at - SPIKE_WINDOW_S) is None
    sql.run(conn, _q(True).insert, town=town, cell=cell, service=service, at=at, hour=int(at // 3600),
            reporter=reporter, network=network, counted=int(counted), incident_id=incident_id,
            network_first=int(network_first))
    draft_id, drafted = None, False
    if counted and incident_id is None:
        draft_id, drafted = _spike(conn, town=town, cell=None if town else cell, service=service, at=at)
    return {"counted": counted, "draft_id": draft_id, "drafted": drafted}


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of this module, for places named by town and by cell."""
    return SimpleNamespace(town=_q(True), cell=_q(False))


@cache
def _q(by_town: bool) -> SimpleNamespace:
    """Return the statements of this module, for places named by town (or by cell)."""
    r, d = sql.table("reports"), sql.table("report_drafts")
    place = r.c.town if by_town else r.c.cell
    counted = sql.truthy(r.c.counted)
    first = sql.truthy(r.c.network_first)
    value = sa.bindparam

    def window(*where):
        return sa.and_(place == value("place"), r.c.service == value("service"), *where,
                       r.c.at > value("since"), r.c.at <= value("until"))

    def count(where):
        return sql.Statement(sa.select(sa.func.count()).select_from(r).where(where))

    return SimpleNamespace(
        seen=sql.Statement(sa.select(sa.literal(1)).where(
            r.c.reporter == value("reporter"), r.c.service == value("service"), place == value("place"),
            counted, r.c.at > value("since")).limit(1)),
        network_seen=sql.Statement(sa.select(sa.literal(1)).where(
            r.c.network == value("network"), r.c.service == value("service"), place == value("place"),
            first, r.c.at > value("since")).limit(1)),
        insert=sql.Statement(sa.insert(r).values({c: value(c) for c in (
            "town", "cell", "service", "at", "hour", "reporter", "network", "counted", "incident_id",
            "network_first")})),
        reporters=count(window(counted)),
        networks=count(window(first)),
        networks_distinct=sql.Statement(sa.select(sa.func.count(sa.distinct(r.c.network))).where(window(counted))),
        # A reporter counts once in any hour (module docstring): the counted rows of a clock hour
        # are its distinct reporters.
        usual=count(sa.and_(place == value("place"), r.c.service == value("service"), counted,
                            r.c.at >= value("since"), r.c.at < value("until"),
                            r.c.hour.in_([value(f"h{k}") for k in range(1, BASELINE_WEEKS + 1)]))),
        open_draft=sql.Statement(sa.select(d.c.id).where(
            d.c.state == sql.const("draft"), sa.func.coalesce(d.c.town, "") == value("town"),
            sa.func.coalesce(d.c.cell, "") == value("cell"), d.c.service == value("service"),
            d.c.opened_at > value("since")).order_by(d.c.id.desc()).limit(1)),
        raise_draft=sql.Statement(sa.update(d).where(d.c.id == value("id")).values(
            reporters=sa.case((d.c.reporters < value("reporters"), value("reporters")), else_=d.c.reporters),
            networks=sa.case((d.c.networks < value("networks"), value("networks")), else_=d.c.networks))),
        new_draft=sql.Statement(sa.insert(d).values({c: value(c) for c in (
            "town", "cell", "service", "opened_at", "reporters", "networks", "usual")}).returning(d.c.id)),
        cells=sql.Statement(
            sa.select(r.c.cell, r.c.service, sa.func.count(sa.distinct(r.c.reporter)))
            .where(r.c.cell.is_not(None), counted, r.c.at > value("since"), r.c.at <= value("until"),
                   sa.or_(sa.cast(value("service"), sa.Text).is_(None), r.c.service == value("service")))
            .group_by(r.c.cell, r.c.service)
            .having(sa.func.count(sa.distinct(r.c.reporter)) >= MIN_CELL_COUNT)
            .order_by(r.c.cell, r.c.service)),
        attached=sql.Statement(sa.select(sa.func.count(sa.distinct(r.c.reporter))).where(
            r.c.incident_id == value("incident"), counted)),
        drafts=sql.Statement(sa.select(d).where(d.c.state == sql.const("draft")).order_by(d.c.id.desc())),
        all_drafts=sql.Statement(sa.select(d).order_by(d.c.id.desc())),
        draft=sql.Statement(sa.select(d).where(d.c.id == value("id"))),
        decide=sql.Statement(sa.update(d).where(d.c.id == value("id")).values({c: value(c) for c in (
            "state", "incident_id", "reason", "decided_at", "decided_by")})),
        # Reports that made a confirmed draft count towards "N people reported this".
        attach=sql.Statement(sa.update(r).where(
            r.c.incident_id.is_(None), r.c.service == value("service"), counted,
            sa.func.coalesce(r.c.town, "") == value("town"),
            sa.or_(value("cell") == "", r.c.cell == value("cell")), r.c.at > value("since"))
            .values(incident_id=value("incident"))),
    )


def reporters(conn, *, town: str | None = None, cell: str | None = None, service: str, at: float,
              window_s: int = 3600) -> int:
    """Return the distinct reporters counted in the window ending at ``at`` (at most an hour long)."""
    if window_s > 3600:
        raise ValueError("windows longer than the counting hour would count a reporter twice")
    return sql.scalar(conn, _q(bool(town)).reporters, place=town or cell, service=service, since=at - window_s,
                      until=at)


def recent(conn, *, town: str | None = None, cell: str | None = None, service: str, at: float,
           window_s: int = 3600) -> tuple[int, int]:
    """Return ``(distinct reporters, distinct networks)`` counted in the window ending at ``at``."""
    found = reporters(conn, town=town, cell=cell, service=service, at=at, window_s=window_s)
    q = _q(bool(town))
    networks = q.networks if window_s <= SPIKE_WINDOW_S else q.networks_distinct
    return found, sql.scalar(conn, networks, place=town or cell, service=service, since=at - window_s, until=at)


def usual(conn, *, town: str | None = None, cell: str | None = None, service: str, at: float) -> float:
    """Return the usual distinct reporters in the hour of the week of ``at`` (mean of past weeks)."""
    hour = int(at // 3600)
    hours = {f"h{k}": hour - WEEK_H * k for k in range(1, BASELINE_WEEKS + 1)}
    found = sql.scalar(conn, _q(bool(town)).usual, place=town or cell, service=service,
                       since=hours[f"h{BASELINE_WEEKS}"] * 3600, until=(hours["h1"] + 1) * 3600, **hours)
    return found / BASELINE_WEEKS


def town_counts(conn, town: str, at: float) -> list[dict]:
    """Return, per service, distinct reporters in the last hour and the usual level for this hour."""
    return [{"service": s, "last_hour": reporters(conn, town=town, service=s, at=at),
             "usual": round(usual(conn, town=town, service=s, at=at), 1)} for s in SERVICES]


def cell_counts(conn, at: float, service: str | None = None, window_s: int = 3600) -> list[dict]:
    """Return distinct reporters per cell and service in the window (cells of ``MIN_CELL_COUNT`` or more)."""
    rows = sql.run(conn, _q(False).cells, since=at - window_s, until=at, service=service).fetchall()
    return [{"cell": r[0], "service": r[1], "count": r[2]} for r in rows]


def attached(conn, incident_id: int) -> int:
    """Return how many distinct reporters reported while the incident was active."""
    return sql.scalar(conn, _q(True).attached, incident=incident_id)


def attached_counts(conn, incident_ids) -> dict[int, int]:
    """Return ``{incident id: distinct reporters}`` for the incidents that have attached reports."""
    found = {i: attached(conn, i) for i in {int(i) for i in incident_ids}}
    return {i: n for i, n in found.items() if n}


def check_spike(conn, *, town: str | None, cell: str | None, service: str, at: float) -> int | None:
    """Apply the spike rule (module docstring); open or refresh the place's draft; return its id."""
    return _spike(conn, town=town, cell=cell, service=service, at=at)[0]


def _spike(conn, *, town, cell, service, at) -> tuple[int | None, bool]:
    """Return ``(draft id or None, whether this call opened it)``."""
    found, networks = recent(conn, town=town, cell=cell, service=service, at=at, window_s=SPIKE_WINDOW_S)
    base = usual(conn, town=town, cell=cell, service=service, at=at) * SPIKE_WINDOW_S / 3600
    q = _q(bool(town))
    open_draft = sql.scalar(conn, q.open_draft, town=town or "", cell=cell or "", service=service,
                            since=at - DRAFT_FRESH_S)
    if open_draft is not None:
        sql.run(conn, q.raise_draft, reporters=found, networks=networks, id=open_draft)
        return open_draft, False
    if networks < SPIKE_MIN_NETWORKS or found < SPIKE_RATIO * base:
        return None, False
    from portal.listening import outbox

    draft_id = sql.scalar(conn, q.new_draft, town=town, cell=cell, service=service, opened_at=at,
                          reporters=found, networks=networks, usual=base)
    # Staff are told through the outbox, in this same transaction: the draft and its notice
    # commit together, and the worker delivers it once (see ``outbox.record_draft``).
    outbox.record_draft(conn, draft_id)
    return draft_id, True


def drafts(conn, *, all_states: bool = False) -> list[dict]:
    """Return drafts (open ones, or every one), newest first."""
    q = _q(True)
    return [dict(r) for r in sql.run(conn, q.all_drafts if all_states else q.drafts)]


def get_draft(conn, draft_id: int) -> dict:
    """Return an open draft, or raise Refused saying why not."""
    row = sql.run(conn, _q(True).draft, id=draft_id).fetchone()
    if row is None:
        raise Refused(f"draft {draft_id} does not exist; `incident.py drafts` lists the open ones")
    if row["state"] != "draft":
        raise Refused(f"draft {draft_id} is already {row['state']}; only open drafts can be decided")
    return dict(row)


def mark(conn, draft_id: int, *, state: str, at: float, by: str, incident_id: int | None = None,
         reason: str | None = None) -> None:
    """Record staff's decision on an open draft (inside the caller's transaction)."""
    get_draft(conn, draft_id)
    sql.run(conn, _q(True).decide, state=state, incident_id=incident_id, reason=reason, decided_at=at,
            decided_by=by, id=draft_id)


def confirm(db_path, draft_id: int, *, author: str, title: str | None = None, message: str | None = None,
            title_en: str | None = None, message_en: str | None = None, now: datetime | None = None) -> int:
    """Publish a draft: open a normal incident for its place and service; return the incident's id.

    The incident is made by ``open_incident`` (the staff write every other incident goes
    through), so public pages, feeds and subscribers' notifications need nothing new. Texts not
    given are written in both languages: "No internet in Pechory (reported by customers)" and
    how many reported it.
    """
    import shapely

    from portal.data import db
    from portal.incidents import writes
    from portal.listening import cells, store

    with store.transaction(db_path) as conn:
        draft = get_draft(conn, draft_id)
        names = _town_names(conn, draft["town"])
    defaults = {lang: _draft_texts(draft, names, lang) for lang in ("ru", "en")}
    given_en = title_en is not None or message_en is not None
    if title is None:
        title = defaults["ru"][0]
        title_en = title_en if title_en is not None else defaults["en"][0]
    if message is None:
        message = defaults["ru"][1]
        message_en = message_en if message_en is not None else defaults["en"][1]
    elif not given_en:
        message_en = None  # staff wrote the first update themselves: no English default beside it
    area = None if draft["town"] else shapely.box(*cells.cell_bounds(draft["cell"]))
    opened = now or db.utcnow()
    incident_id = writes.open_incident(db_path, title=title, services=[draft["service"]],
                                       towns=[draft["town"]] if draft["town"] else (), area=area,
                                       at=datetime.fromtimestamp(min(draft["opened_at"], opened.timestamp()),
                                                                 timezone.utc),
                                       message=message, author=author, now=opened,
                                       **{k: v for k, v in (("title_en", title_en),
                                                            ("message_en", message_en)) if v is not None})
    with store.transaction(db_path) as conn:
        mark(conn, draft_id, state="confirmed", at=opened.timestamp(), by=author, incident_id=incident_id)
        sql.run(conn, _q(True).attach, incident=incident_id, service=draft["service"], town=draft["town"] or "",
                cell=draft["cell"] or "", since=draft["opened_at"] - SPIKE_WINDOW_S)
    return incident_id


def _town_names(conn, slug: str | None) -> dict:
    """Return a town's names by language (the slug when the live layer lacks it)."""
    from portal.data import layers

    if slug is None:
        return {}
    town = next((t for t in layers.load_towns(conn) if t.slug == slug), None)
    return {"en": town.name, "ru": town.name_ru or town.name} if town else {"en": slug, "ru": slug}


def _draft_texts(draft, names: dict, lang: str) -> tuple[str, str]:
    """Return the default title and first update of a confirmed draft in a language."""
    from portal import vocabulary
    from portal.listening.messages import translations

    _ = translations(lang).gettext
    # Looked up outside _(): the catalogue extractor would take the key for a message.
    label = vocabulary.SERVICE[draft["service"]]
    service = _(label)
    place = names.get(lang) or _("one neighbourhood")
    title = _("%(service)s down in %(place)s (reported by customers)") % {"service": service, "place": place}
    message = _("%(n)s customers reported problems with %(service)s; we are checking.") % {
        "n": draft["reporters"], "service": service.lower() if lang == "en" else service}
    return title, message


def dismiss(db_path, draft_id: int, *, reason: str, author: str, at: float) -> None:
    """Drop a draft, keeping why (a false alarm stays on record for tuning the rule)."""
    from portal.listening import store

    if not reason or not reason.strip():
        # Checked before the write connection opens: a refusal leaves the files as they were.
        raise Refused("--reason is empty; say why the draft is dropped, e.g. 'one building, known fault'")
    with store.transaction(db_path) as conn:
        mark(conn, draft_id, state="dismissed", at=at, by=author, reason=reason.strip())
