"""Default settings and where the database lives."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEODATA_DIR = ROOT / "geodata"


def default_database_path() -> Path:
    """Return ``$PORTAL_DB``, else ``instance/portal.sqlite`` beside the package."""
    env = os.environ.get("PORTAL_DB")
    return Path(env) if env else ROOT / "instance" / "portal.sqlite"


DEFAULTS = {
    "DATABASE": None,  # resolved by create_app from default_database_path()
    "GEODATA_DIR": str(GEODATA_DIR),
    "TILES_URL": os.environ.get("PORTAL_TILES_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    "TILES_ATTRIBUTION": os.environ.get(
        "PORTAL_TILES_ATTRIBUTION",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    ),
    # The public origin (scheme, host and any path prefix) of every absolute link the portal
    # writes: feeds, e-mails, permanent links. Never taken from the request's Host header,
    # which any client can set and a cache would hand to everyone. Set it in production.
    "BASE_URL": os.environ.get("PORTAL_BASE_URL", "http://localhost"),
    "TIMEZONE": "Europe/Moscow",
    # A wired connection within this distance of the network is a standard drop;
    # farther away it needs a network extension (FCC: 500 ft, about 150 m).
    "DROP_DISTANCE_M": 150,
    # Restoration deadlines from the subscriber contract, hours per service.
    "RESTORE_DEADLINE_HOURS": {"internet": 24, "tv": 24, "phone": 72},
    # Rows per page of the town overview (the CSV and ?page=all have every town).
    "OVERVIEW_PAGE_SIZE": 100,
    "LANGUAGES": ["ru", "en"],
    "BABEL_DEFAULT_LOCALE": "ru",
}
