"""What a subscriber receives: e-mail (plain text and HTML, headers) and webhook bodies, in Russian or English.

The words come from the portal's catalog (``portal/web/translations``, read from the ``.po``
file itself, so the worker needs no compiled catalog). A message is rendered once per event,
language and place (``Renderer`` caches the parts); per subscriber only the address, the
Message-ID and the unsubscribe link change, so 100,000 messages cost one rendering.

The Message-ID is stable for an event and a subscription: ``<e<event>.s<subscription>.notify@domain>``.
A message sent twice after a crash (see ``deliveries``) carries the same one, and mail
clients and mailbox providers show it once.
"""
from __future__ import annotations

import base64
import io
import json
import secrets
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from portal import vocabulary
from portal.data import db
from portal.incidents import language

CATALOGS = Path(__file__).resolve().parent.parent / "web" / "translations"
TEMPLATES = Path(__file__).resolve().parent / "templates"


SERVICE, KIND, STATUS = vocabulary.SERVICE, vocabulary.INCIDENT_KIND, vocabulary.INCIDENT_STATUS
ZONE_LABEL = vocabulary.ZONE_SHORT


@lru_cache(maxsize=4)
def translations(lang: str):
    """Return the catalog of a language, read from its .po file (English: the source strings)."""
    po = CATALOGS / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


@lru_cache(maxsize=4)
def _environment(lang: str, html: bool) -> jinja2.Environment:
    """Return a template environment for one language (HTML ones escape)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=html,
                             extensions=["jinja2.ext.i18n"], keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.install_gettext_translations(translations(lang), newstyle=True)
    return env


class Words:
    """Translation and formatting in one language and the region's time zone."""

    def __init__(self, lang: str, tz: str):
        self.lang, self.zone, self.tz = lang, ZoneInfo(tz), tz
        self._t = translations(lang)

    def __call__(self, text: str, **values) -> str:
        """Translate and fill in %(name)s values."""
        found = self._t.gettext(text)
        return found % values if values else found

    def time(self, iso: str | None) -> str:
        """Return an ISO UTC time in local time: '22 November 2026, 21:05 MSK'."""
        if not iso:
            return "—"
        when = db.parse_iso(iso)
        zone = self(ZONE_LABEL[self.tz]) if self.tz in ZONE_LABEL else self.tz
        return f"{format_datetime(when, 'd MMMM y, HH:mm', tzinfo=self.zone, locale=self.lang)} {zone}"

    def services(self, names) -> str:
        """Return service names joined, translated."""
        return ", ".join(self(SERVICE.get(s, s)) for s in names)


def place_name(words: Words, sub, towns: dict) -> str:
    """Return how the message names the subscriber's place: the town, or the point (±100 m)."""
    if sub["town"]:
        town = towns.get(sub["town"])
        if town is None:
            return sub["town"]
        return (town[1] or town[0]) if words.lang == "ru" else town[0]
    _ = words
    return _("point %(lat)s, %(lon)s (±100 m)", lat=f"{sub['lat']:.4f}", lon=f"{sub['lon']:.4f}")


def _in_lang(found: dict, key: str, lang: str) -> str | None:
    """Return an incident text in the subscriber's language when staff wrote it, else as stored."""
    return language.pick(found.get(f"{key}_by_lang"), lang)[0] or found.get(key)


def content(kind: str, payload: dict, folded: list[dict], words: Words, place: str, links: dict) -> dict:
    """Return the subject, opening line, facts and paragraphs of a notification."""
    _ = words
    inc, update = payload["incident"], payload.get("update") or {}
    title, kind_label = _in_lang(inc, "title", words.lang), _(KIND.get(inc["kind"], inc["kind"]))
    status = _(STATUS.get(inc["status"], inc["status"]))
    maintenance = inc["kind"] == "maintenance"
    if kind == "opened":
        subject = _("%(place)s: %(kind)s — %(title)s", kind=kind_label, place=place, title=title)
        intro = _("A new problem affects your place: %(place)s.", place=place)
    elif kind == "updated":
        subject = _("Update: %(title)s (%(status)s)", title=title, status=status)
        intro = _("There is news about the problem affecting your place: %(place)s.", place=place)
    elif kind == "resolved" and maintenance:
        subject = _("Completed: %(title)s", title=title)
        intro = _("The planned maintenance affecting your place is completed: %(place)s.", place=place)
    elif kind == "resolved":
        subject = _("Resolved: %(title)s", title=title)
        intro = _("The problem affecting your place is resolved: %(place)s.", place=place)
    elif kind == "maintenance_announced":
        subject = _("%(place)s: planned maintenance — %(title)s", place=place, title=title)
        intro = _("Maintenance is planned from %(start)s to %(end)s. Your place: %(place)s.", place=place,
                  start=_.time(inc["started_at"]), end=_.time(inc["scheduled_end"]))
    elif kind == "maintenance_started":
        subject = _("%(place)s: maintenance has started — %(title)s", place=place, title=title)
        intro = _("The planned maintenance has started; it should end by %(end)s. Your place: %(place)s.",
                  place=place, end=_.time(inc["scheduled_end"]))
    elif kind == "deadline_passed":
        subject = _("Restoration deadline passed: %(title)s", title=title)
        intro = _("The problem affecting your place has lasted longer than your contract allows: %(place)s.",
                  place=place)
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    facts = [(_("Status"), status), (_("Services"), _.services(inc["services"]))]
    if maintenance:
        facts.append((_("Window"), _("%(start)s to %(end)s", start=_.time(inc["started_at"]),
                                     end=_.time(inc["scheduled_end"]))))
    else:
        facts.append((_("Started"), _.time(inc["started_at"])))
        if inc.get("resolved_at"):
            facts.append((_("Ended"), _.time(inc["resolved_at"])))
        elif inc.get("eta"):
            facts.append((_("Expected restoration"), _.time(inc["eta"])))
    if inc.get("cause"):
        facts.append((_("Cause"), _in_lang(inc, "cause", words.lang)))
    paragraphs = []
    if kind == "deadline_passed":
        d = payload["deadline"]
        paragraphs.append(_(
            "Your contract promises that %(service)s is restored within %(hours)s hours of the start of an "
            "outage. That deadline passed at %(due)s. For every day without service after it, the contract "
            "entitles you to a recalculation of the monthly fee for %(service)s; it is applied to your next "
            "bill without a request.", service=_(SERVICE.get(d["service"], d["service"])),
            hours=f"{d['hours']:g}", due=_.time(d["due_at"])))
    earlier = [{"when": _.time(u["at"]), "status": _(STATUS.get(u["status"], u["status"])),
                "message": _in_lang(u, "message", words.lang)} for u in folded]
    latest = None
    if update:
        latest = {"when": _.time(update["at"]), "status": _(STATUS.get(update["status"], update["status"])),
                  "message": _in_lang(update, "message", words.lang)}
    return {"subject": subject, "intro": intro, "title": title, "facts": facts, "paragraphs": paragraphs,
            "latest": latest, "earlier": earlier, "place": place, **links}


def confirmation_content(words: Words, place: str, services, links: dict) -> dict:
    """Return the subject and text of the confirmation message."""
    _ = words
    return {
        "subject": _("Confirm your outage notifications: %(place)s", place=place),
        "intro": _("Someone, probably you, asked to be told about outages and maintenance (%(services)s) "
                   "for this place: %(place)s.", place=place, services=_.services(services)),
        "action": _("Open this link to confirm; nothing will be sent until you do:"),
        "ignore": _("If it was not you, ignore this message: the request is deleted after 7 days."),
        "place": place, **links,
    }


def staff_content(payload: dict, words: Words, towns: dict, links: dict) -> dict:
    """Return the subject and text of the message telling staff an incident was drafted from reports."""
    _ = words
    d = payload["draft"]
    if d["town"]:
        town = towns.get(d["town"])
        place = ((town[1] or town[0]) if words.lang == "ru" else town[0]) if town else d["town"]
    else:
        place = _("map cell %(cell)s (about 100 m)", cell=d["cell"])
    service = _(SERVICE.get(d["service"], d["service"]))
    return {
        "subject": _("Draft incident %(id)s: %(service)s in %(place)s, %(count)s reports", id=d["id"],
                     service=service, place=place, count=d["reporters"]),
        "intro": _("Customers' reports crossed the spike rule; a draft incident waits for your decision. "
                   "It is not public until you confirm it."),
        "facts": [(_("Place"), place), (_("Service"), service),
                  (_("Reporters (distinct)"), str(d["reporters"])),
                  (_("Networks (distinct)"), str(d["networks"])),
                  (_("Usual for this half hour"), f"{d['usual']:g}"),
                  (_("Drafted at"), _.time(d["opened_at"]))],
        "action": _("Decide from the shell:"),
        "commands": [f"python scripts/incident.py confirm {d['id']}",
                     f'python scripts/incident.py dismiss {d["id"]} --reason "..."',
                     "python scripts/incident.py drafts"],
        **links,
    }


class Renderer:
    """Renders messages for one batch, caching the parts that do not depend on the subscriber."""

    def __init__(self, settings, towns: dict):
        """Remember the settings and the live towns ``{slug: (name, name_ru)}``."""
        self.settings, self.towns = settings, towns
        self._parts: dict = {}

    def links(self, token: str, incident_id: int | None) -> dict:
        """Return the links a message carries."""
        base = self.settings.base_url
        return {
            "incident_url": f"{base}/incidents/{incident_id}" if incident_id else None,
            "unsubscribe_url": f"{base}/subscriptions/unsubscribe/{token}",
            "confirm_url": f"{base}/subscriptions/confirm/{token}",
            "site": base,
        }

    def _rendered(self, row, folded) -> tuple[str, str, str, str]:
        """Return (encoded subject, text, html, placeholder) of a row's event for its language and place."""
        key = (row["event_id"], row["lang"], row["town"] or row["cell"])
        found = self._parts.get(key)
        if found is None:
            if len(self._parts) > 2000:
                self._parts.clear()
            words = Words(row["lang"], self.settings.timezone)
            place = None if row["kind"] == "draft_opened" else place_name(words, row, self.towns)
            # The subscriber's own link goes in last: the rest is shared by everyone in the place.
            token = "T" + secrets.token_hex(12)
            payload = json.loads(row["payload"])
            incident_id = (payload.get("incident") or {}).get("id")
            links = self.links(token, incident_id)
            if row["kind"] == "draft_opened":
                ctx = staff_content(payload, words, self.towns, links)
                name = "staff"
            elif row["kind"] == "confirm":
                ctx = confirmation_content(words, place, _services(row["services"]), links)
                name = "confirm"
            else:
                ctx = content(row["kind"], payload, folded(row["event_id"]), words, place, links)
                name = "notification"
            text = _environment(row["lang"], False).get_template(f"{name}.txt").render(ctx)
            html = _environment(row["lang"], True).get_template(f"{name}.html").render(ctx, lang=row["lang"])
            found = self._parts[key] = (Header(ctx["subject"], "utf-8", maxlinelen=76).encode(linesep="\r\n"),
                                        text, html, token)
        return found

    def _sender(self) -> str:
        """Return the From header (made once)."""
        found = self.__dict__.get("sender_header")
        if found is None:
            name, sender = parseaddr(self.settings.mail_from)
            found = self.sender_header = formataddr((name, sender), charset="utf-8") if name else sender
        return found

    def email(self, row, folded) -> bytes:
        """Return the whole message for one delivery row (see ``deliveries.claim``)."""
        subject, text, html, placeholder = self._rendered(row, folded)
        text = text.replace(placeholder, row["token"])
        html = html.replace(placeholder, row["token"])
        settings = self.settings
        boundary = "=_" + secrets.token_hex(12)
        unsubscribe = f"{settings.base_url}/subscriptions/unsubscribe/{row['token']}"
        headers = [
            ("From", self._sender()),
            ("To", row["address"]),
            ("Subject", subject),
            ("Date", formatdate(usegmt=True)),
            ("Message-ID", message_id(row["event_id"], row["subscription_id"], settings.mail_domain)),
            ("Content-Language", row["lang"]),
            ("Auto-Submitted", "auto-generated"),
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ]
        if row["kind"] not in ("confirm", "draft_opened"):
            headers[5:5] = [
                ("List-Id", f"<notifications.{settings.mail_domain}>"),
                ("List-Unsubscribe", f"<{unsubscribe}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ]
        out = [f"{k}: {v}" for k, v in headers]
        out.append("")
        for subtype, body in (("plain", text), ("html", html)):
            out += [f"--{boundary}", f"Content-Type: text/{subtype}; charset=utf-8",
                    "Content-Transfer-Encoding: base64", "",
                    base64.encodebytes(body.encode("utf-8")).decode("ascii").rstrip("\n").replace("\n", "\r\n")]
        out += [f"--{boundary}--", ""]
        return "\r\n".join(out).encode("ascii")

    def webhook(self, row, folded) -> dict:
        """Return the JSON body of a webhook delivery (English words; the data speaks for itself)."""
        links = self.links(row["token"], None)
        if row["kind"] == "confirm":
            return {"type": "subscription.confirm", "confirm_url": links["confirm_url"],
                    "unsubscribe_url": links["unsubscribe_url"], "place": _place(row),
                    "services": list(_services(row["services"]))}
        payload = json.loads(row["payload"])
        if row["kind"] == "draft_opened":
            draft = payload["draft"]
            return {"type": "draft.opened", "id": delivery_key(row["event_id"], row["subscription_id"]),
                    "draft": draft, "commands": {
                        "confirm": f"python scripts/incident.py confirm {draft['id']}",
                        "dismiss": f'python scripts/incident.py dismiss {draft["id"]} --reason "..."'}}
        incident = dict(payload["incident"])
        incident["url"] = f"{self.settings.base_url}/incidents/{incident['id']}"
        body = {"type": f"incident.{row['kind']}", "id": delivery_key(row["event_id"], row["subscription_id"]),
                "incident": incident, "update": payload.get("update"), "earlier_updates": folded(row["event_id"]),
                "place": _place(row), "unsubscribe_url": links["unsubscribe_url"]}
        if payload.get("deadline"):
            body["deadline"] = payload["deadline"]
        return body


def _services(mask: int):
    """Return the service names of a bit mask."""
    from portal.listening.subscriptions import services_of

    return services_of(mask)


def _place(row) -> dict:
    """Return the subscription's place as a webhook names it."""
    return {"town": row["town"]} if row["town"] else {"cell": row["cell"], "lat": row["lat"], "lon": row["lon"]}


def message_id(event_id: int, subscription_id: int, domain: str) -> str:
    """Return the Message-ID of an event's message to a subscription: the same on every attempt."""
    return f"<{delivery_key(event_id, subscription_id)}.notify@{domain}>"


def delivery_key(event_id: int, subscription_id: int) -> str:
    """Return the stable name of one event's delivery to one subscription."""
    return f"e{event_id}.s{subscription_id}"

