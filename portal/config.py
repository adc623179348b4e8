"""Default settings and where the database lives."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEODATA_DIR = ROOT / "geodata"


INSTANCE_DIR = ROOT / "instance"


def default_database_path() -> Path | str:
    """Return ``$PORTAL_DB`` (a path, or a ``postgresql://`` URL as it is), else ``instance/portal.sqlite``."""
    env = os.environ.get("PORTAL_DB")
    if env and "://" in env:
        return env  # a URL: a Path would fold its "//"
    return Path(env) if env else INSTANCE_DIR / "portal.sqlite"


# Settings read from the environment as ``PORTAL_<NAME>`` (``create_app`` config keys and the
# scripts use the same names without the prefix): name -> (type, default). One source each.
ENVIRONMENT_SETTINGS: dict[str, tuple[type, object]] = {
    # Mail relay for notifications, smtp://[user:password@]host:port (smtps:// for TLS from the
    # start; ?starttls=1 to upgrade). Unset: messages are written to a Maildir (MAILDIR).
    "SMTP_URL": (str, None),
    "MAIL_FROM": (str, "Coverage and outages <noreply@localhost>"),
    # The public origin (scheme, host and any path prefix) of every absolute link the portal writes:
    # feeds, e-mails, permanent links. Never the request's Host header, which any client can set
    # and a cache would hand to everyone. Set it in production.
    "BASE_URL": (str, "http://127.0.0.1:5000"),
    # Redis for the delivery queue and the rate-limit counters when several machines share them;
    # unset: a SQLite queue file beside the database and counts in the database.
    "REDIS_URL": (str, None),
    # Webhooks to private, loopback and link-local addresses are refused unless this is true.
    "WEBHOOK_ALLOW_PRIVATE": (bool, False),
    # Where messages go when SMTP_URL is unset (default: mail/ beside the database).
    "MAILDIR": (str, None),
    # The SQLite file of the delivery queue when REDIS_URL is unset (default: beside the database
    # file; with the data in PostgreSQL, instance/portal-queue.sqlite). The web side and the
    # worker must name the same file.
    "QUEUE_FILE": (str, None),
    # Updates of one incident within this many seconds are sent as one message.
    "NOTIFY_FOLD_SECONDS": (float, 60.0),
    # A failed delivery is tried again after this many seconds, doubling up to an hour.
    "NOTIFY_RETRY_SECONDS": (float, 60.0),
    # Reverse proxies in front of the portal that append to X-Forwarded-For (nginx: 1).
    "TRUSTED_PROXY_HOPS": (int, 0),
    # Bounded work per request (docs/performance.md): seconds an answer that can run long may take
    # before it gives up with 503 and Retry-After (0: no limit), and the most coverage areas and
    # bytes one /api/v1/coverage.geojson answer may hold (more: 400 asking for a narrower bbox).
    "REQUEST_BUDGET_SECONDS": (float, 10.0),
    "MAX_GEOJSON_FEATURES": (int, 5000),
    "MAX_GEOJSON_BYTES": (int, 5_000_000),
    # Where staff are told of an incident drafted from customers' reports: e-mail addresses
    # (comma-separated) and a webhook URL. Unset: drafts wait in `scripts/incident.py drafts`.
    "STAFF_EMAIL": (str, None),
    "STAFF_WEBHOOK": (str, None),
    # Days within which staff promise to answer a "this answer is wrong here" report (shown per town).
    "FEEDBACK_RESPONSE_DAYS": (int, 30),
    # The provider: shown in the footer of every page, on every incident and on a written claim.
    # The defaults are the demo's fictional provider; set the real ones in production. Texts come
    # in Russian (the region's language) and English (``_EN``).
    "PROVIDER_NAME": (str, "Плесков Линк (демо)"),
    "PROVIDER_NAME_EN": (str, "Pleskov Link (demo)"),
    "PROVIDER_PHONE": (str, "+7 800 000-00-00"),
    "PROVIDER_EMAIL": (str, "support@pleskov-link.example"),
    "PROVIDER_ADDRESS": (str, "180000, Псков, Демонстрационная ул., 1 (вымышленный адрес)"),
    "PROVIDER_ADDRESS_EN": (str, "1 Demonstration St, Pskov 180000 (a fictional address)"),
    "PROVIDER_HOURS": (str, "Поддержка по телефону круглосуточно; офис пн–пт 9:00–18:00"),
    "PROVIDER_HOURS_EN": (str, "Phone support 24/7; office Mon–Fri 9:00–18:00"),
    # Days within which the provider answers a written claim (shown on the claim).
    "CLAIM_ANSWER_DAYS": (int, 30),
}


def _parse_setting(kind: type, raw: str):
    """Return an environment value as its setting's type."""
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return kind(raw)


def from_environment(environ=None) -> dict:
    """Return every ``ENVIRONMENT_SETTINGS`` value from ``PORTAL_<NAME>`` (else its default), read now."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, (kind, default) in ENVIRONMENT_SETTINGS.items():
        raw = environ.get(f"PORTAL_{name}")
        found[name] = default if raw is None or raw == "" else _parse_setting(kind, raw)
    return found


def settings(overrides=None) -> dict:
    """Return the defaults with the environment read now and ``overrides`` on top (scripts, workers)."""
    found = {**DEFAULTS, **from_environment(), **(overrides or {})}
    if not found.get("DATABASE"):
        found["DATABASE"] = str(default_database_path())
    return found


DEFAULTS = {
    "DATABASE": None,  # resolved by create_app from default_database_path()
    "GEODATA_DIR": str(GEODATA_DIR),
    "TILES_URL": os.environ.get("PORTAL_TILES_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    "TILES_ATTRIBUTION": os.environ.get(
        "PORTAL_TILES_ATTRIBUTION",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    ),
    "TIMEZONE": "Europe/Moscow",
    # A wired connection within this distance of the network is a standard drop;
    # farther away it needs a network extension (FCC: 500 ft, about 150 m).
    "DROP_DISTANCE_M": 150,
    # Restoration deadlines from the subscriber contract, hours per service.
    "RESTORE_DEADLINE_HOURS": {"internet": 24, "tv": 24, "phone": 72},
    # The monthly fee per service (roubles; demo values). When a restoration deadline is missed
    # the contract recalculates the fee: every day, full or partial, without the service is not
    # paid for (docs/contract.md); a written claim asks for it.
    "MONTHLY_FEES": {"internet": 600, "tv": 350, "phone": 250},
    # Rows per page of the town overview (the CSV and ?page=all have every town).
    "OVERVIEW_PAGE_SIZE": 100,
    "LANGUAGES": ["ru", "en"],
    "BABEL_DEFAULT_LOCALE": "ru",
}
DEFAULTS.update(from_environment())
