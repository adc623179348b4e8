"""Incident texts in two languages: which language a text is in, and which text a reader gets.

Staff write an incident's title, cause, updates and the affected place in words in Russian (the
region's language) and, optionally, in English. A reader gets the text in their language when it
exists, else the other one, marked with its language so pages can say so (``lang``) and JSON can
carry it (``title_lang``...).
"""
from __future__ import annotations

import re

LANGUAGES = ("ru", "en")
# The region's language: what staff write first, and what a page falls back to first.
PRIMARY = "ru"
_CYRILLIC = re.compile("[\u0400-\u04ff]")


def text_language(text: str) -> str:
    """Return 'ru' for a text with a Cyrillic letter, else 'en'.

    The incident options ``--title``, ``--message``, ``--cause`` and ``--where`` take the Russian
    text; a text without a single Cyrillic letter cannot be Russian, so it is kept as English
    (as are the English-only texts written before both languages were kept).
    """
    return "ru" if _CYRILLIC.search(text or "") else "en"


def by_lang(text: str | None, english: str | None) -> dict:
    """Return ``{"ru": ..., "en": ...}`` from a stored text and its English column (empty: None).

    The stored text is in the language ``text_language`` finds; when that is English it stands
    before the English column (it is what staff wrote last there: ``edit --title``).
    """
    found = {"ru": None, "en": english or None}
    if text:
        found[text_language(text)] = text
    return found


def first(found: dict) -> str | None:
    """Return the text stored in the first column: Russian when written, else English."""
    return found.get("ru") or found.get("en")


def pick(by_lang: dict | None, lang: str) -> tuple[str | None, str | None]:
    """Return (text, its language): the reader's language when written, else the other; else (None, None)."""
    by_lang = by_lang or {}
    order = [lang] + [code for code in (PRIMARY, *LANGUAGES) if code != lang]
    for code in order:
        if by_lang.get(code):
            return by_lang[code], code
    return None, None


# Keys of an answer that hold texts per language, and the fields the reader's text goes to.
LOCALIZED = {"title_by_lang": "title", "message_by_lang": "message", "cause_by_lang": "cause",
             "where_by_lang": "where", "name_by_lang": "name", "address_by_lang": "address",
             "hours_by_lang": "hours", "body_by_lang": "body"}


# Parts of answers that never hold incident texts (shapes can be long): not walked.
_NO_TEXTS = frozenset({"geometry", "coordinates", "features", "technologies", "nearest", "available", "planned",
                       "verdicts", "nearest_town"})


def in_language(found, lang: str):
    """Set, in every dict of an answer (nested too), each text to the reader's language; return it.

    For a dict holding ``title_by_lang`` this sets ``title`` and ``title_lang`` (likewise
    ``message``, ``cause``, ``where``). The dicts are changed in place.
    """
    if isinstance(found, dict):
        for key, value in found.items():
            if key not in LOCALIZED and key not in _NO_TEXTS and isinstance(value, (dict, list)):
                in_language(value, lang)
        for key in LOCALIZED.keys() & found.keys():
            field = LOCALIZED[key]
            found[field], found[f"{field}_lang"] = pick(found[key], lang)
    elif isinstance(found, list) and found and isinstance(found[0], (dict, list)):
        for item in found:
            in_language(item, lang)
    return found
