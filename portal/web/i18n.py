"""Russian and English: locale choice (query, cookie, Accept-Language) and formatting helpers."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from babel import Locale
from flask import Flask, current_app, g, request
from flask_babel import Babel, format_date, format_decimal, format_percent, format_time, get_locale
from flask_babel import gettext as _

from portal import vocabulary
from portal.data import db

LANG_COOKIE = "lang"


def select_locale() -> str:
    """Pick the language: ?lang=, then the remembered cookie, then Accept-Language."""
    languages = current_app.config["LANGUAGES"]
    asked = request.args.get("lang")
    if asked in languages:
        g.set_lang_cookie = asked
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in languages:
        return remembered
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def remember_locale(response):
    """Store an explicitly chosen language in a cookie for a year."""
    lang = g.pop("set_lang_cookie", None)
    if lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax")
    return response


def lang() -> str:
    """Return the current language code ('ru' or 'en')."""
    return str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])


def town_name(town) -> str:
    """Return a town's name in the current language (Печоры / Pechory)."""
    name_ru = town.get("name_ru") if isinstance(town, dict) else getattr(town, "name_ru", None)
    name = town.get("name") if isinstance(town, dict) else town.name
    return name_ru if lang() == "ru" and name_ru else name


# English dates read day month year ("7 Dec 2026"), never the locale's numeric "12/7/26" or the
# month-first "Dec 7, 2026", which readers outside the US take the wrong way round. Russian keeps
# its own patterns ("7 дек. 2026 г.").
ENGLISH_DATE_PATTERNS = {"short": "d MMM y", "medium": "d MMM y", "long": "d MMMM y",
                         "full": "EEEE, d MMMM y"}


def _date(value, fmt: str) -> str:
    """Format a date or datetime in the page's language: day month year in English."""
    if lang() == "en":
        fmt = ENGLISH_DATE_PATTERNS.get(fmt, fmt)
    return format_date(value, fmt)


def local_time(value, date_format: str = "medium") -> str:
    """Format a UTC time (datetime or ISO string) in the region's time zone to the minute, zone named."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = db.parse_iso(value)
    # Date and time formatted separately: the locale's medium datetime pattern shows seconds.
    return f"{_date(value, date_format)}, {format_time(value, 'short')} ({zone_name(short=True)})"


def local_date(value, fmt: str = "long") -> str:
    """Format a calendar date (date or ISO string) in the current language: 1 March 2027 / 1 марта 2027 г."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value  # not a date: show what the data says rather than fail the page
    return _date(value, fmt)


def zone_name(short: bool = False) -> str:
    """Return the name of the region's time zone, as pages show it."""
    tz = current_app.config["TIMEZONE"]
    names = vocabulary.ZONE_SHORT if short else vocabulary.ZONE_LONG
    return _(names[tz]) if tz in names else tz


def percent(value: float | None, digits: int = 0) -> str:
    """Format a 0..1 share as a localised percentage."""
    if value is None:
        return "—"
    # The locale's own pattern keeps its spacing (63% in English, 63 % in Russian); only decimals are added.
    pattern = Locale.parse(lang()).percent_formats[None].pattern
    if digits:
        pattern = re.sub(r"0(?=[^0#,]*$)", "0." + "0" * digits, pattern, count=1)
    return format_percent(value, format=pattern)


def distance(metres) -> str:
    """Format a ground distance: metres below 1 km, else kilometres with one decimal."""
    if metres is None:
        return "—"
    if metres < 1000:
        return _("%(n)s m", n=format_decimal(round(metres)))
    return _("%(n)s km", n=format_decimal(round(metres / 1000, 1)))


def duration(seconds) -> str:
    """Format a number of seconds as '19 h 50 min' or '5 d 19 h' in the page's language."""
    return vocabulary.duration(seconds, _)


def number(value) -> str:
    """Format a number with the locale's separators."""
    return "—" if value is None else format_decimal(value)


def init_app(app: Flask) -> None:
    """Set up Flask-Babel and the template helpers."""
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["TIMEZONE"])
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["TIMEZONE"]
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).parent / "translations"))
    Babel(app, locale_selector=select_locale)
    app.after_request(remember_locale)
    app.jinja_env.globals.update(
        lang=lang, town_name=town_name, zone_name=zone_name, local_time=local_time, local_date=local_date,
        percent=percent, number=number, distance=distance, duration=duration,
    )
