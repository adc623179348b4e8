"""The affected place in words from an area file's names: streets, buildings, as staff's GIS layer names them.

An area file (``scripts/incident.py open --area FILE``) may carry a names column: ``name_ru`` and
``name_en`` are taken as Russian and English, ``name`` (or ``street``) as the language its letters
say (``language.text_language``). The names of all features, in file order and each once, make
the incident's place in words when staff give no ``--where``.
"""
from __future__ import annotations

from pathlib import Path

from portal.incidents import language

# Column (folded to lower case) -> the language it holds; None: by its letters.
COLUMNS = {"name_ru": "ru", "name_en": "en", "name": None, "street": None, "names": None}


def area_names(paths) -> dict | None:
    """Return ``{"ru": ..., "en": ...}`` naming the features of the files (names joined by ', '), or None."""
    import geopandas as gpd

    from portal.data import gisfiles

    found: dict[str, list[str]] = {"ru": [], "en": []}
    for path in paths:
        frame = gpd.read_file(gisfiles.gdal_path(Path(path)))
        columns = {c.casefold(): c for c in frame.columns if c != frame.geometry.name}
        for _, row in frame.iterrows():
            for key, lang in COLUMNS.items():
                column = columns.get(key)
                value = row[column] if column is not None else None
                if not isinstance(value, str) or not value.strip():
                    continue
                value = " ".join(value.split())
                code = lang or language.text_language(value)
                if value not in found[code]:
                    found[code].append(value)
    joined = {code: ", ".join(names) or None for code, names in found.items()}
    return joined if joined["ru"] or joined["en"] else None
