"""The verdict per technology at a point, and its one wording for the page, the JSON and the API.

Each technology gets exactly one of:

- ``available``: the point is inside live coverage, or a wired technology's network is within a
  standard drop (``drop_distance_m``, 150 m by default) of it;
- ``extension_needed``: a wired technology's nearest live coverage is farther than a standard
  drop: the distance in metres, the compass direction towards it, and the town it is in (or
  nearest to), where the extension would come from;
- ``planned``: coverage is planned at the point (the earliest date);
- ``none``: none of the above. Fixed wireless is never "extended": outside its coverage it is
  ``none``, with the distance to its nearest coverage for information.

They are ordered nearest useful option first: available (best technology first), planned
(earliest first), extension needed (nearest first), none. The sentence of each verdict is
written here, in the reader's language, from the portal's catalog; pages and the JSON show the
same sentence.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import lru_cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal

from portal import vocabulary
from portal.coverage.index import TECH_ORDER
from portal.listening.messages import translations
from portal.vocabulary import N_

KINDS = ("available", "extension_needed", "planned", "none")
# Technologies delivered by a cable to the house: a network within a drop is a connection.
WIRED = frozenset({"fiber", "cable", "dsl"})

# "West of you": which way the coverage lies, as one phrase (Russian: "к западу от вас").
DIRECTION_OF_YOU = {
    "N": N_("north of you"), "NE": N_("north-east of you"), "E": N_("east of you"),
    "SE": N_("south-east of you"), "S": N_("south of you"), "SW": N_("south-west of you"),
    "W": N_("west of you"), "NW": N_("north-west of you"),
}


class Wording:
    """The words and number and date formats of one language ('ru' or 'en'), Flask-free."""

    def __init__(self, lang: str):
        """Read the language's catalog (English is the source text)."""
        self.lang = lang if lang in ("ru", "en") else "en"
        self._t = translations(self.lang)
        self._known: dict[str, str] = {}  # translations already looked up (the catalog never changes)
        # Whole numbers are grouped by hand with the locale's symbol: babel's formatter is ~50 µs a call.
        self._group = Locale.parse(self.lang).number_symbols["latn"]["group"]

    def __call__(self, text: str, **values) -> str:
        """Translate and fill in %(name)s values."""
        found = self._known.get(text)
        if found is None:
            found = self._known[text] = self._t.gettext(text)
        return found % values if values else found

    def metres(self, metres: int) -> str:
        """Return whole metres with the language's thousands separator: '1,003 m' / '1 003 м'."""
        return self("%(n)s m", n=f"{int(metres):,}".replace(",", self._group))

    def number(self, value) -> str:
        """Return a number with the language's separators."""
        if float(value).is_integer():
            return f"{int(value):,}".replace(",", self._group)
        return format_decimal(value, locale=self.lang)

    def date(self, iso: str) -> str:
        """Return an ISO date as day, month and year: '1 March 2027' / '1 марта 2027 г.'."""
        return _date(iso, self.lang)

    def town(self, town: dict) -> str:
        """Return a town's name in this language."""
        return (town.get("name_ru") or town["name"]) if self.lang == "ru" else town["name"]


@lru_cache(maxsize=1024)
def _date(iso: str, lang: str) -> str:
    """Return an ISO date in a language (remembered: coverage has a handful of planned dates)."""
    try:
        day = date.fromisoformat(iso[:10])
    except ValueError:
        return iso  # not a date: show what the data says
    return format_date(day, "long" if lang == "ru" else "d MMMM y", locale=lang)


@lru_cache(maxsize=4)
def wording(lang: str) -> Wording:
    """Return the (shared) wording of a language."""
    return Wording(lang)


def _town_brief(town) -> dict:
    """Return the short form of a town in a verdict."""
    return {"slug": town.slug, "name": town.name, "name_ru": town.name_ru}


def point_verdicts(answer: dict, drop_distance_m: float,
                   towns_near: Callable[[list[tuple[float, float]]], list]) -> list[dict]:
    """Return one verdict per technology for a point answer (``CoverageIndex.point_answer``), best first.

    ``towns_near([(lon, lat), ...])`` returns for each place the Town whose extent holds or is
    nearest to it (or None), in one search: it names where the network an extension would start from lies.
    """
    inside = {a["technology"]: a for a in answer["available"]}
    planned = {p["technology"]: p for p in answer["planned"]}
    nearest = answer["nearest"]
    far = [t for t in TECH_ORDER if t in WIRED and t in nearest and t not in inside and t not in planned
           and nearest[t]["distance_m"] > drop_distance_m]
    town_of = dict(zip(far, towns_near([(nearest[t]["lon"], nearest[t]["lat"]) for t in far]))) if far else {}
    verdicts = []
    for technology in TECH_ORDER:
        v = {"technology": technology, "verdict": "none", "distance_m": None, "direction": None,
             "connection": None, "town": None, "available_from": None, "max_down_mbps": None,
             "max_up_mbps": None}
        near = nearest.get(technology)
        if near is not None:
            v["distance_m"], v["direction"] = near["distance_m"], near["direction"]
        if technology in inside:
            v.update(verdict="available", connection="inside", distance_m=0, direction=None,
                     max_down_mbps=inside[technology]["max_down_mbps"],
                     max_up_mbps=inside[technology]["max_up_mbps"])
        elif technology in WIRED and near is not None and near["distance_m"] <= drop_distance_m:
            v.update(verdict="available", connection="standard_drop")
        elif technology in planned:
            v.update(verdict="planned", available_from=planned[technology]["available_from"])
        elif technology in town_of:
            town = town_of[technology]
            v.update(verdict="extension_needed", connection="network_extension",
                     town=_town_brief(town) if town is not None else None)
        verdicts.append(v)
    verdicts.sort(key=_usefulness)
    return verdicts


def _usefulness(v: dict) -> tuple:
    """Return the sort key: available, planned, extension needed, none; within each the most useful first."""
    rank = TECH_ORDER.index(v["technology"])
    kind = v["verdict"]
    if kind == "planned":
        return 1, v["available_from"] or "9999", rank
    if kind == "extension_needed":
        return 2, v["distance_m"], rank
    return (0 if kind == "available" else 3), 0, rank


def verdict_text(v: dict, words: Wording) -> str:
    """Return the sentence of one verdict in the wording's language."""
    _ = words
    # Looked up outside _(): the catalog extractor would take a quoted key inside it for a message.
    label, kind, towards = vocabulary.TECHNOLOGY[v["technology"]], v["verdict"], v["direction"]
    tech = _(label)
    where = None
    if v["distance_m"] is not None and towards is not None:
        where = {"distance": words.metres(v["distance_m"]), "direction": _(DIRECTION_OF_YOU[towards])}
    if kind == "available" and v["connection"] == "inside":
        if v["max_down_mbps"]:
            speed = _("up to %(down)s / %(up)s Mbit/s", down=words.number(v["max_down_mbps"]),
                      up=words.number(v["max_up_mbps"]) if v["max_up_mbps"] is not None else "—")
            return _("%(tech)s: available here, %(speed)s", tech=tech, speed=speed)
        return _("%(tech)s: available here", tech=tech)
    if kind == "available":
        return _("%(tech)s: available, %(distance)s %(direction)s, within a standard drop",
                 tech=tech, **where)
    if kind == "planned":
        if v["available_from"]:
            return _("%(tech)s: planned here from %(date)s", tech=tech, date=words.date(v["available_from"]))
        return _("%(tech)s: planned here", tech=tech)
    if kind == "extension_needed":
        if v["town"]:
            return _("%(tech)s: %(distance)s %(direction)s, beyond a standard drop, network extension needed;"
                     " nearest town %(town)s", tech=tech, town=words.town(v["town"]), **where)
        return _("%(tech)s: %(distance)s %(direction)s, beyond a standard drop, network extension needed",
                 tech=tech, **where)
    if where:
        return _("%(tech)s: not available here; nearest coverage %(distance)s %(direction)s",
                 tech=tech, **where)
    return _("%(tech)s: not available here", tech=tech)


def nearest_town_text(near: dict, words: Wording) -> str:
    """Return the sentence naming the nearest town of a point outside every town."""
    _ = words
    towards = near["direction"]
    direction = _(DIRECTION_OF_YOU[towards]) if towards else ""
    return _("This point is outside every town we know; the nearest is %(town)s, %(distance)s %(direction)s",
             town=words.town(near), distance=words.metres(near["distance_m"]), direction=direction)


def with_texts(verdicts: list[dict], lang: str) -> list[dict]:
    """Return the verdicts with their sentence (``text``) in a language."""
    words = wording(lang)
    return [{**v, "text": verdict_text(v, words)} for v in verdicts]
