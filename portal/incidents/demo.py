"""The shipped demo incidents: relative times in geodata/incidents.json, written through the staff checks."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import shapely.geometry

from portal.config import DEFAULTS
from portal.data import db
from portal.incidents.writes import _open, _resolve, _schedule, _update

DEMO_AUTHOR = "demo"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def load_demo(conn: sqlite3.Connection, path, now: datetime) -> list[int]:
    """Insert the demo incidents of ``path`` through the staff write functions; return their ids.

    Call inside the build transaction, after the towns layer is stored. Times in the file are
    relative (see ``demo_time``) so the demo always has a current outage and an upcoming window.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    zone = ZoneInfo(db.get_meta(conn).get("timezone") or DEFAULTS["TIMEZONE"])
    ids = []
    for item in data["incidents"]:
        when = lambda text, base=None: demo_time(text, now, zone, base)  # noqa: E731
        common = {**_texts(item, "title"), **_texts(item, "where"), "services": item["services"],
                  "towns": item.get("towns", ()),
                  "area": shapely.geometry.shape(item["area"]) if item.get("area") else None,
                  "author": DEMO_AUTHOR, "now": now}
        if item["kind"] == "maintenance":
            ids.append(_schedule(conn, start=when(item["start"]), end=when(item["end"]),
                                 **_texts(item, "message"), **common))
            continue
        first, *rest = item["updates"]
        start = when(first["at"])
        incident_id = _open(conn, kind=item["kind"], at=start, eta=when(first.get("eta"), start),
                            **_texts(first, "message"), **_texts(first, "cause"), **common)
        for u in rest:
            _update(conn, incident_id, status=u["status"], at=when(u["at"], start),
                    eta=when(u.get("eta"), start), author=DEMO_AUTHOR, now=now,
                    **_texts(u, "message"), **_texts(u, "cause"))
        if item.get("resolved"):
            _resolve(conn, incident_id, at=when(item["resolved"]["at"], start), author=DEMO_AUTHOR, now=now,
                     **_texts(item["resolved"], "message"))
        ids.append(incident_id)
    return ids


def _texts(item: dict, name: str) -> dict:
    """Return a text of the demo file as the writes take it: Russian ``name``, English ``name_en``.

    The file holds the English text as ``name`` and the Russian one as ``name_ru``; a text given in
    English only stays English.
    """
    english, russian = item.get(name), item.get(f"{name}_ru")
    if russian:
        return {name: russian, f"{name}_en": english}
    return {name: english}


def demo_time(text: str | None, now: datetime, zone: ZoneInfo, base: datetime | None = None):
    """Return the time a relative demo expression names, e.g. ``-3w sun 19:40`` or ``start +1d 11:00``.

    Tokens apply in order: ``start`` (count from the incident's start instead of now), offsets
    such as ``-6d 19h`` (a sign carries over to the following tokens), a weekday (go back to it,
    today included) and a local clock time ``HH:MM``.
    """
    if text is None:
        return None
    tokens = text.split()
    at = now
    if tokens and tokens[0] == "start":
        if base is None:
            raise ValueError(f"demo time {text!r} counts from a start the incident does not have yet")
        at, tokens = base, tokens[1:]
    sign = 1
    units = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
    for token in tokens:
        if re.fullmatch(r"[+-]?(\d+[wdhm])+", token):
            sign = -1 if token[0] == "-" else 1 if token[0] == "+" else sign
            for amount, unit in re.findall(r"(\d+)([wdhm])", token):
                at += sign * timedelta(**{units[unit]: int(amount)})
        elif token in _WEEKDAYS:
            local = at.astimezone(zone)
            at -= timedelta(days=(local.weekday() - _WEEKDAYS.index(token)) % 7)
        elif re.fullmatch(r"\d{1,2}:\d{2}", token):
            hour, minute = map(int, token.split(":"))
            at = at.astimezone(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
        else:
            raise ValueError(f"unreadable demo time {text!r}: {token!r}")
    return at.astimezone(timezone.utc).replace(microsecond=0)
