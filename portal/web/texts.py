"""Incident texts in the reader's language on every page and JSON answer, and marked when they are not.

Answers carry each staff text in both languages (``title_by_lang``...; ``portal.incidents.language``).
Pages get them in the page's language: every template's context passes through
``answers.in_language`` before rendering, and ``in_lang`` marks a text in the other language
with ``lang`` and a visible note. JSON answers get them in the language ``?lang=`` names, else
the region's: never from ``Accept-Language``, since JSON answers are cached by URL alone
(``portal.web.caching``); both texts are always in the answer too.
"""
from __future__ import annotations

import re

from flask import Flask, before_render_template, current_app, has_request_context, request
from flask_babel import format_currency
from flask_babel import gettext as _
from markupsafe import Markup, escape

from portal import answers
from portal.incidents import language
from portal.web.i18n import lang
from portal.web.params import parse_choice


def json_lang() -> str:
    """Return the language JSON answers are in: ``?lang=`` when it names one, else the region's."""
    if not has_request_context():
        return language.PRIMARY
    asked = request.args.get("lang")
    return asked if asked in current_app.config["LANGUAGES"] else language.PRIMARY


def asked_json_lang() -> str:
    """Return ``?lang=`` for a JSON answer that words sentences itself (400 naming it when unknown).

    The default is the one every JSON answer has (``json_lang``): the region's language.
    """
    return parse_choice(request.args, "lang", tuple(current_app.config["LANGUAGES"]), language.PRIMARY)


def in_lang(text, text_lang: str | None, note: bool = True) -> Markup:
    """Return the text for a page, marked with ``lang`` (and a note) when it is not in the page's language."""
    if text is None:
        return Markup("")
    if not text_lang or text_lang == lang():
        return escape(text)
    said = _("in Russian") if text_lang == "ru" else _("in English")
    shown = Markup('<span lang="%s">%s</span>') % (text_lang, text)
    return shown + (Markup(' <span class="lang-note">(%s)</span>') % said if note else Markup(""))


def tel(phone: str) -> str:
    """Return a phone number as a ``tel:`` link wants it: a leading plus and digits only."""
    return "tel:" + ("+" if phone.strip().startswith("+") else "") + re.sub(r"\D", "", phone)


def money(value, currency: str = "RUB") -> str:
    """Format an amount of money in the page's language (600,00 ₽ / RUB 600.00)."""
    if value is None:
        return "—"
    # English's own pattern glues the code to the number (RUB600.00): the code, a space, the amount.
    return format_currency(value, currency, format=None if lang() == "ru" else "¤¤\xa0#,##0.00")


def _localize_context(sender, template, context, **extra) -> None:
    """Put every incident text of a page's context in the page's language."""
    code = lang()
    for value in context.values():
        if isinstance(value, (dict, list)):
            answers.in_language(value, code)


def init_app(app: Flask) -> None:
    """Localize pages before each template renders (JSON: ``json_provider``); give templates ``in_lang``."""
    before_render_template.connect(_localize_context, app)
    app.jinja_env.globals.update(in_lang=in_lang, money=money, tel=tel)
