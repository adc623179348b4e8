"""Atom feeds of incidents (feedgen) and an iCalendar of maintenance windows (icalendar).

Both take the incident dicts that ``portal.availability`` returns and words already in the
reader's language, so this module needs no web framework. The libraries do all the escaping:
staff text is never spliced into XML or iCalendar by hand.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from feedgen.feed import FeedGenerator
from icalendar import Calendar, Event

from portal.data import db
from portal.data.text import strip_controls

# Words used when the caller passes none (the views pass translated ones).
DEFAULT_WORDS = {
    "services": "Services", "started": "Started", "resolved": "Ended", "eta": "Expected restoration",
    "status": {}, "service": {}, "kind": {},
}
# A feed is for news: the most recently updated incidents are enough.
MAX_ENTRIES = 100


def local(value: str | None, tz: str, zone_label: str) -> str:
    """Return an ISO UTC time as 'YYYY-MM-DD HH:MM ZONE' in the region's time zone."""
    if not value:
        return "—"
    return f"{db.parse_iso(value).astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M} {zone_label}"


def _word(words: dict, group: str, key: str) -> str:
    """Return the caller's word for a vocabulary value, else the value itself."""
    return str(words.get(group, {}).get(key, key))


def entry_text(incident: dict, words: dict, tz: str, zone_label: str) -> str:
    """Return the plain-text body of an incident's entry: its latest update and key facts."""
    latest = incident["updates"][-1] if incident.get("updates") else None
    lines = []
    if latest:
        lines.append(f"{_word(words, 'status', latest['status'])} · {local(latest['at'], tz, zone_label)}")
        lines.append(latest["message"])
        lines.append("")
    services = ", ".join(_word(words, "service", s) for s in incident["services"])
    lines.append(f"{words['services']}: {services}")
    lines.append(f"{words['started']}: {local(incident['started_at'], tz, zone_label)}")
    if incident.get("resolved_at"):
        lines.append(f"{words['resolved']}: {local(incident['resolved_at'], tz, zone_label)}")
    elif incident.get("eta"):
        lines.append(f"{words['eta']}: {local(incident['eta'], tz, zone_label)}")
    return "\n".join(lines)


def incidents_atom(incidents: list[dict], *, feed_id: str, title: str, site_url: str, self_url: str,
                   base_url: str, author: str, language: str = "en", tz: str = "UTC",
                   zone_label: str = "UTC", words: dict | None = None, now: datetime | None = None) -> bytes:
    """Return an Atom feed with one entry per incident, most recently updated first."""
    words = {**DEFAULT_WORDS, **(words or {})}
    items = sorted(incidents, key=lambda i: (i["updated_at"], i["id"]), reverse=True)[:MAX_ENTRIES]
    fg = FeedGenerator()
    fg.id(feed_id)
    # Text stored before staff input was checked may hold characters XML cannot carry.
    fg.title(strip_controls(title))
    fg.author({"name": author})
    fg.link(href=site_url, rel="alternate")
    fg.link(href=self_url, rel="self")
    fg.language(language)
    newest = items[0]["updated_at"] if items else None
    fg.updated(db.parse_iso(newest) if newest else (now or datetime.now(timezone.utc)))
    for incident in items:
        link = base_url.rstrip("/") + incident["url"]
        status = _word(words, "status", incident["status"])
        entry = fg.add_entry(order="append")
        entry.id(link)
        entry.title(strip_controls(f"{incident['title']} — {status}"))
        entry.link(href=link, rel="alternate")
        # Published when it was made public: a planned window is announced before it starts, and
        # nothing is published in the future.
        published = db.parse_iso(incident.get("announced_at") or incident["started_at"])
        updated = db.parse_iso(incident["updated_at"])
        if now is not None:
            published = min(published, now)
        entry.published(min(published, updated))
        entry.updated(updated)
        entry.summary(strip_controls(entry_text(incident, words, tz, zone_label)))
        for service in incident["services"]:
            entry.category(term=service, label=_word(words, "service", service))
        entry.category(term=incident["kind"], label=_word(words, "kind", incident["kind"]))
    return fg.atom_str(pretty=True)


def maintenance_calendar(items: list[dict], *, name: str, prodid: str, domain: str, base_url: str,
                         town_names: dict[str, str], words: dict | None = None,
                         now: datetime | None = None) -> bytes:
    """Return an iCalendar with one VEVENT per maintenance window, times in UTC."""
    words = {**DEFAULT_WORDS, **(words or {})}
    cal = Calendar()
    cal.add("prodid", prodid)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    for item in items:
        link = base_url.rstrip("/") + item["url"]
        towns = [town_names.get(s, s) for s in item.get("affected_towns") or item.get("towns", [])]
        # The announcement describes the work; later entries only mark the window's start and end.
        announced = [u["message"] for u in item.get("updates", []) if u["status"] == "scheduled"]
        latest = announced[0] if announced else item["title"]
        services = ", ".join(_word(words, "service", s) for s in item["services"])
        event = Event()
        # Stable across rebuilds of the feed, so calendars update the event instead of adding one.
        event.add("uid", f"incident-{item['id']}@{domain}")
        # DTSTAMP and SEQUENCE say which revision of the event this is (RFC 5545, 3.8.7.2 and
        # 3.8.7.4): the last change by staff, and how many changes since the announcement.
        changed = db.parse_iso(item.get("changed_at") or item["updated_at"])
        event.add("dtstamp", changed)
        event.add("last-modified", changed)
        event.add("sequence", int(item.get("sequence") or 0))
        event.add("dtstart", db.parse_iso(item["scheduled_start"] or item["started_at"]))
        cancelled = item["status"] == "cancelled"  # called off: the planned window, marked CANCELLED
        end = item["scheduled_end"] if cancelled else item["resolved_at"] or item["scheduled_end"]
        event.add("dtend", db.parse_iso(end))
        event.add("summary", item["title"])
        event.add("description", f"{latest}\n\n{words['services']}: {services}\n{link}")
        event.add("location", ", ".join(towns))
        event.add("url", link)
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        cal.add_component(event)
    return cal.to_ical()
