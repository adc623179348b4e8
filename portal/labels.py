"""User-facing names of the vocabulary (technologies, statuses, directions), translated."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

TECHNOLOGY = {
    "fiber": _l("Fiber"),
    "cable": _l("Cable (DOCSIS)"),
    "dsl": _l("DSL (phone line)"),
    "wireless": _l("Fixed wireless"),
}
COVERAGE_STATUS = {"live": _l("available"), "planned": _l("planned")}
DIRECTION = {
    "N": _l("north"), "NE": _l("north-east"), "E": _l("east"), "SE": _l("south-east"),
    "S": _l("south"), "SW": _l("south-west"), "W": _l("west"), "NW": _l("north-west"),
}
SERVICE = {"internet": _l("Internet"), "tv": _l("TV"), "phone": _l("Phone")}


def as_strings(mapping: dict) -> dict[str, str]:
    """Return a label mapping with the lazy strings resolved in the current language."""
    return {k: str(v) for k, v in mapping.items()}

COLUMN = {
    "name": _l("Town"),
    "population": _l("Population"),
    "best": _l("Best technology"),
    "fiber_share": _l("Fiber share"),
}
