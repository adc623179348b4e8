"""The Russian catalogue translates every string the portal shows, with no fuzzy guesses left in it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from pagecheck import ROOT


def test_every_string_has_a_russian_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "-q", "extract", "-F", "babel.cfg", "-k", "_l", "-o", str(pot), "."],
                   cwd=ROOT, check=True)
    with pot.open("rb") as f:
        wanted = [m.id for m in read_po(f) if m.id]
    with (ROOT / "portal/web/translations/ru/LC_MESSAGES/messages.po").open("rb") as f:
        catalogue = read_po(f, locale="ru")
    assert len(wanted) > 100, "extraction found too few strings: check babel.cfg"
    missing = [m for m in wanted if m not in catalogue]
    untranslated = [m.id for m in catalogue if m.id and not all(m.string if isinstance(m.string, tuple)
                                                                else [m.string])]
    fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
    assert not missing, f"not in the Russian catalogue (run pybabel update): {missing}"
    assert not untranslated, f"untranslated: {untranslated}"
    assert not fuzzy, f"fuzzy: {fuzzy}"
