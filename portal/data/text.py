"""Staff text (titles, messages, names, authors): what may be stored and shown everywhere.

Every text staff write ends up in pages, JSON, Atom (XML) and iCalendar. XML 1.0 cannot hold
most C0 control characters: one vertical tab in a title once made the Atom feed answer 500
for good. So text is checked before it is stored:

- tab, carriage return and line feed are normalised: to one space in single-line text
  (titles, names, authors, causes); in messages line breaks are kept as ``\\n``;
- any other control character (C0, DEL, C1), a lone surrogate (bytes that were not UTF-8)
  or a Unicode non-character is refused, naming the character, where it is and the value.
"""
from __future__ import annotations

import re
import unicodedata

# C0 except tab, LF and CR; DEL; C1; lone surrogates; U+FFFE/U+FFFF (never characters in XML).
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_NAMES = {"\x00": "NUL", "\x0b": "vertical tab", "\x0c": "form feed", "\x1b": "escape", "\x7f": "delete",
          "\x08": "backspace", "\x07": "bell"}


class BadText(ValueError):
    """Text that cannot be stored; the message names the character, where it is and the value."""


def _describe(char: str) -> str:
    """Return 'U+000B (vertical tab)' for a character."""
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"{code} (a byte that is not UTF-8)"
    name = _NAMES.get(char) or unicodedata.name(char, "")
    return f"{code} ({name.lower()})" if name else f"{code} (a control character)"


def _shown(value: str) -> str:
    """Return the value as the message quotes it: escaped, clipped."""
    text = value if len(value) <= 60 else value[:57] + "..."
    return ascii(text) if _ANY_CONTROL.search(text) else repr(text)


def check_text(name: str, value: str, *, multiline: bool = False) -> str:
    """Return the text normalised (see the module), or raise BadText naming what is wrong.

    Surrounding white space is removed; an empty result is left to the caller to judge.
    """
    found = _REFUSED.search(value)
    if found:
        raise BadText(
            f"{name} {_shown(value)} contains the control character {_describe(found.group())} at position"
            f" {found.start() + 1}; remove it (tabs and line breaks are fine: they become spaces"
            f"{' or stay line breaks' if multiline else ''})")
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
        value = "\n".join(line.rstrip() for line in value.split("\n"))
    else:
        value = re.sub(r"[\t\r\n]+", " ", value)
    return value.strip()


def strip_controls(value: str | None) -> str | None:
    """Return text without the characters XML cannot hold (for showing text stored before checks)."""
    if value is None:
        return None
    return _REFUSED.sub("", value)
